"""``rlvr sandbox ...``: build the runtime image, serve the HTTP API."""

from __future__ import annotations

import json
import logging
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(help="Docker-sandboxed code execution service.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
err = Console(stderr=True)


@app.command("build-image")
def build_image(force: Annotated[bool, typer.Option(help="Rebuild even if the tag exists.")] = False) -> None:
    """Build the sandbox image from Debian packages (mmdebstrap | docker import); a no-op when present."""
    from rlvr.sandbox.image import ImageError
    from rlvr.sandbox.image import build_image as build

    try:
        with err.status("building sandbox image (mmdebstrap | docker import)..."):
            tag = build(force=force, log=lambda m: err.print(f"[sandbox] {m}", highlight=False))
    except ImageError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    typer.echo(tag)


@app.command("build-rootfs")
def build_rootfs() -> None:
    """Unpack the image's root filesystem for the bwrap backend (from Docker's image, else mmdebstrap)."""
    from rlvr.sandbox.image import ImageError, ensure_rootfs

    try:
        path = ensure_rootfs(log=lambda m: err.print(f"[sandbox] {m}", highlight=False))
    except ImageError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    typer.echo(str(path))


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8080,
    pool_size: Annotated[int | None, typer.Option(help="Containers (default: CPU cores).")] = None,
    pool_json: Annotated[str | None, typer.Option(help="PoolConfig fields as a JSON object.")] = None,
    backend: Annotated[str | None, typer.Option(help="docker (default) or bwrap (rootless bubblewrap, no Docker).")] = None,
    log_level: Annotated[str, typer.Option(help="Python/uvicorn log level.")] = "info",
) -> None:
    """Run the sandbox HTTP service (FastAPI/uvicorn) over a pool of warm containers."""
    import uvicorn
    from pydantic import ValidationError
    from rlvr.sandbox.image import ImageError
    from rlvr.sandbox.pool import PoolConfig
    from rlvr.sandbox.server import create_app

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("rlvr").setLevel(log_level.upper())  # the service's own loggers (rlvr.sandbox.*)
    try:
        fields = json.loads(pool_json) if pool_json else {}
        if not isinstance(fields, dict):
            raise ValueError("--pool-json must be a JSON object")
        if pool_size is not None:
            fields["size"] = pool_size
        if backend is not None:
            fields["backend"] = backend
        config = PoolConfig(**fields)
    except (ValueError, ValidationError) as exc:
        err.print(f"[bold red]error:[/] bad pool configuration: {exc}", highlight=False)
        raise typer.Exit(2) from None
    try:
        uvicorn.run(create_app(config), host=host, port=port, log_level=log_level.lower())
    except ImageError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None


if __name__ == "__main__":
    app()
