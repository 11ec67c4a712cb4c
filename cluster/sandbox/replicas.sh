#!/usr/bin/env bash
# Run SANDBOX_REPLICAS `rlvr sandbox serve` processes on this host, replica i on port SANDBOX_PORT+i,
# each over SANDBOX_POOL_SIZE warm sandboxes: containers of this host's Docker engine, or, where no
# engine answers (most SLURM sites forbid Docker), rootless bubblewrap sandboxes on the same root
# filesystem (SANDBOX_BACKEND=docker|bwrap forces one). Stays in the foreground until a replica exits
# (then stops the others and exits non-zero), so srun/systemd/nohup can own it.
# Needs what scripts/setup.sh installs (.venv; Docker engine or bubblewrap; mmdebstrap).
#
#   SANDBOX_REPLICAS=4 SANDBOX_POOL_SIZE=8 cluster/sandbox/replicas.sh
#   SANDBOX_BACKEND=bwrap cluster/sandbox/replicas.sh
#   python cluster/sandbox_urls.py --hosts "$(hostname)" --replicas 4 --wait 300   # the URLs, once healthy
set -euo pipefail
cd "$(dirname "$0")/../.."

replicas=${SANDBOX_REPLICAS:-2}
port=${SANDBOX_PORT:-8080}
host=${SANDBOX_HOST:-0.0.0.0}
cores=$(nproc)
pool=${SANDBOX_POOL_SIZE:-$(( cores / replicas > 0 ? cores / replicas : 1 ))}  # about one test per core
rlvr=${RLVR_BIN:-.venv/bin/rlvr}

backend=${SANDBOX_BACKEND:-}
if [[ -z "$backend" ]]; then
  if docker info >/dev/null 2>&1; then backend=docker; else backend=bwrap; fi
fi
# Build the runtime image (or unpack its root filesystem) once, before the replicas start: each would
# otherwise try to.
if [[ "$backend" == docker ]]; then
  "$rlvr" sandbox build-image >/dev/null
else
  "$rlvr" sandbox build-rootfs >/dev/null
fi

pids=()
stop() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait || true; }
trap stop EXIT
trap 'exit 143' INT TERM
for ((i = 0; i < replicas; i++)); do
  "$rlvr" sandbox serve --backend "$backend" --host "$host" --port $((port + i)) --pool-size "$pool" \
    --log-level warning &
  pids+=("$!")
  echo "[sandbox] replica $i: http://$(hostname):$((port + i)) ($backend pool $pool, pid $!)" >&2
done
set +e
wait -n "${pids[@]}"
rc=$?
echo "[sandbox] a replica exited with status $rc; stopping the others" >&2
exit $(( rc == 0 ? 1 : rc ))
