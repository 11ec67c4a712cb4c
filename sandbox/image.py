"""The sandbox runtime image: built locally from Debian packages, tagged with a hash of its recipe.

Nothing is pulled from a registry. ``mmdebstrap`` assembles a minimal Debian root filesystem from the
machine's apt sources and pipes it as a tarball into ``docker import``. The tag is a hash of the
recipe (:data:`SPEC`), so building is idempotent: when the tag exists, nothing happens. Our job runner
is not baked in; it is handed to the container on its command line (see :mod:`rlvr.sandbox.pool`), so
changing the runner never needs a rebuild.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

IMAGE_REPO = "rlvr-sandbox"
LABEL_SPEC = "rlvr.sandbox.spec"

# Everything that determines the image's content. Bump `recipe` when the build steps change.
# Adding a language means adding its Debian packages here (and an entry in sandbox/languages.py).
SPEC: dict = {
    "recipe": 1,
    "suite": "bookworm",
    "variant": "essential",
    "packages": sorted(["python3", "g++"]),
    # Docs, man pages and translations are dead weight in a sandbox.
    "path_excludes": ["/usr/share/doc/*", "/usr/share/man/*", "/usr/share/locale/*", "/usr/share/info/*"],
}


class ImageError(RuntimeError):
    """The image cannot be built or found; the message says what to do."""


def spec_hash(spec: dict | None = None) -> str:
    blob = json.dumps(spec or SPEC, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def image_tag(spec: dict | None = None) -> str:
    return f"{IMAGE_REPO}:{spec_hash(spec)}"


def docker_client(timeout: float = 120):
    """A connected Docker client (API calls time out after ``timeout`` s), or an :class:`ImageError`
    explaining how to start the engine."""
    import docker

    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except Exception as exc:  # docker raises several unrelated types for "no engine"
        raise ImageError(
            "no Docker engine is reachable "
            f"({type(exc).__name__}: {exc}). Start it with "
            "`nohup dockerd >/var/log/rlvr-dockerd.log 2>&1 &` (as root; install with "
            "`apt-get install -y docker.io`), or run scripts/setup.sh, then retry."
        ) from exc
    return client


def image_exists(tag: str | None = None, client=None) -> bool:
    import docker

    client = client or docker_client()
    try:
        client.images.get(tag or image_tag())
        return True
    except docker.errors.ImageNotFound:
        return False


def mmdebstrap_command(spec: dict | None = None) -> list[str]:
    spec = spec or SPEC
    cmd = ["mmdebstrap", f"--variant={spec['variant']}", "--include=" + ",".join(spec["packages"])]
    cmd += [f"--dpkgopt=path-exclude={p}" for p in spec["path_excludes"]]
    cmd += [spec["suite"], "-"]  # "-": write the tarball to stdout
    return cmd


def build_image(force: bool = False, log: Callable[[str], None] = print) -> str:
    """Build the image unless its content-hash tag already exists; returns the tag."""
    tag = image_tag()
    client = docker_client()
    if not force and image_exists(tag, client):
        log(f"image {tag} already present")
        return tag
    for tool in ("mmdebstrap", "docker"):
        if shutil.which(tool) is None:
            raise ImageError(f"`{tool}` is not installed; run `apt-get install -y mmdebstrap docker.io` "
                             "(or scripts/setup.sh)")
    log(f"building {tag} from Debian {SPEC['suite']} packages {SPEC['packages']} (about a minute)")
    t0 = time.monotonic()
    debstrap = subprocess.Popen(mmdebstrap_command(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    importer = subprocess.run(
        ["docker", "import", "--change", f"LABEL {LABEL_SPEC}={spec_hash()}", "-", tag],
        stdin=debstrap.stdout, capture_output=True,
    )
    debstrap.stdout.close()
    strap_err = debstrap.stderr.read().decode(errors="replace")
    debstrap.wait()
    if debstrap.returncode != 0:
        raise ImageError(f"mmdebstrap failed (exit {debstrap.returncode}):\n{strap_err[-4000:]}")
    if importer.returncode != 0:
        raise ImageError(f"docker import failed (exit {importer.returncode}):\n"
                         f"{importer.stderr.decode(errors='replace')[-4000:]}")
    log(f"built {tag} in {time.monotonic() - t0:.0f} s")
    return tag


def ensure_image(log: Callable[[str], None] = print) -> str:
    """The tag of a present image, building it first when missing."""
    return build_image(force=False, log=log)


# ------------------------------------------------------------------------------ a root filesystem (bwrap)
def rootfs_dir(spec: dict | None = None) -> Path:
    """Where the unpacked root filesystem of the image lives: ``$RLVR_SANDBOX_ROOTFS`` (a parent folder)
    or ``~/.cache/rlvr/sandbox-rootfs``, one subfolder per recipe hash."""
    base = Path(os.environ.get("RLVR_SANDBOX_ROOTFS") or Path.home() / ".cache/rlvr/sandbox-rootfs")
    return base / spec_hash(spec)


def ensure_rootfs(log: Callable[[str], None] = print) -> Path:
    """The image's root filesystem as a folder (for the bwrap backend), unpacked once: from the Docker
    image when an engine has it, else straight from ``mmdebstrap`` (no Docker needed). Returns it."""
    dest = rootfs_dir()
    done = dest / ".rlvr-complete"
    if done.is_file():
        return dest
    tmp = dest.with_name(dest.name + f".partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    t0 = time.monotonic()
    try:
        source = _docker_export() if shutil.which("docker") and _engine_has_image() else None
        if source is None:
            if shutil.which("mmdebstrap") is None:
                raise ImageError("`mmdebstrap` is not installed (and no Docker engine has the image); run "
                                 "`apt-get install -y mmdebstrap` to build the sandbox root filesystem")
            log(f"building the sandbox root filesystem from Debian {SPEC['suite']} packages (about a minute)")
            source = subprocess.Popen(mmdebstrap_command(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        else:
            log(f"unpacking the sandbox root filesystem from image {image_tag()}")
        untar = subprocess.run(["tar", "-x", "-C", str(tmp), "--exclude=./dev/*"], stdin=source.stdout,
                               capture_output=True)
        source.stdout.close()
        err = source.stderr.read().decode(errors="replace") if source.stderr else ""
        source.wait()
        if source.returncode != 0 or untar.returncode != 0:
            raise ImageError(f"unpacking the root filesystem failed (exit {source.returncode}/{untar.returncode}):\n"
                             f"{(err + untar.stderr.decode(errors='replace'))[-4000:]}")
        (tmp / ".rlvr-complete").write_text(json.dumps(SPEC, sort_keys=True) + "\n")
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"sandbox root filesystem ready in {dest} ({time.monotonic() - t0:.0f} s)")
    return dest


def _engine_has_image() -> bool:
    try:
        return image_exists(image_tag(), docker_client(timeout=30))
    except ImageError:
        return False


def _docker_export() -> subprocess.Popen:
    name = f"rlvr-rootfs-{os.getpid()}"
    subprocess.run(["docker", "create", "--name", name, image_tag(), "/bin/true"], check=True, capture_output=True)
    proc = subprocess.Popen(f"docker export {name}; status=$?; docker rm {name} >/dev/null; exit $status",
                            shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return proc
