"""Print the value of ``reward.sandbox_urls`` for ``rlvr train`` (``[http://h:p,...]``) from where the
sandbox replicas run:

    python cluster/sandbox_urls.py --hosts node-a,node-b --replicas 2 --port 8080 --wait 600   # SLURM
    python cluster/sandbox_urls.py --ray-resource sandbox --replicas 4 --wait 600             # Ray launcher

Replica ``i`` of a host listens on ``port + i`` (as cluster/sandbox/replicas.sh and compose.yaml start
them). With ``--wait`` it polls every URL's ``/healthz`` until all answer ``ok`` (or exits 1 naming the
ones that did not), so a training job never starts against a sandbox that is still building its pool.
Only the controller (driver) process calls the sandbox, so only its host needs to reach these URLs.
"""

from __future__ import annotations

import sys
import time
from typing import Annotated

import typer

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def sandbox_urls(hosts: list[str], replicas: int, port: int) -> list[str]:
    """``http://host:port+i`` for every host and replica index, host-major (the client round-robins)."""
    if replicas < 1:
        raise ValueError(f"replicas must be >= 1 (got {replicas})")
    clean = [h.strip() for h in hosts if h.strip()]
    if not clean:
        raise ValueError("no sandbox hosts given")
    return [f"http://{h}:{port + i}" for h in clean for i in range(replicas)]


def flow_list(urls: list[str]) -> str:
    """The override value in the YAML flow syntax that ``rlvr.config`` parses into a list of strings."""
    return "[" + ",".join(urls) + "]"


def ray_hosts(resource: str, address: str = "auto") -> list[str]:
    """IPs of the alive Ray nodes that advertise the custom resource ``resource`` (sandbox nodes)."""
    import ray

    ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        return sorted(
            n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"] and n["Resources"].get(resource, 0) > 0
        )
    finally:
        ray.shutdown()


def unhealthy(urls: list[str]) -> list[str]:
    """The URLs whose ``/healthz`` does not answer ``{"ok": true}`` right now (the one check, shared with
    the controller's wait before its first step and ``rlvr train --check``)."""
    from rlvr.sandbox.client import unhealthy as check

    return check(urls) if urls else []


@app.command()
def main(
    hosts: Annotated[str | None, typer.Option(help="Comma-separated sandbox hosts.")] = None,
    ray_resource: Annotated[
        str | None, typer.Option(help="Instead of --hosts: Ray nodes with this custom resource.")
    ] = None,
    replicas: Annotated[int, typer.Option(help="Replicas per host (ports port..port+replicas-1).")] = 1,
    port: Annotated[int, typer.Option(help="Port of replica 0.")] = 8080,
    wait: Annotated[float, typer.Option(help="Seconds to wait for every /healthz (0: do not check).")] = 0,
) -> None:
    if (hosts is None) == (ray_resource is None):
        typer.echo("error: give exactly one of --hosts and --ray-resource", err=True)
        raise typer.Exit(2)
    host_list = hosts.split(",") if hosts is not None else ray_hosts(ray_resource)
    try:
        urls = sandbox_urls(host_list, replicas, port)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    deadline = time.monotonic() + wait
    while wait > 0:
        bad = unhealthy(urls)
        if not bad:
            break
        if time.monotonic() > deadline:
            typer.echo(f"error: sandbox replicas not healthy after {wait:.0f} s: {', '.join(bad)}", err=True)
            raise typer.Exit(1)
        time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))
    typer.echo(flow_list(urls))


if __name__ == "__main__":
    sys.exit(app())
