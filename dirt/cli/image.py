"""``dirt image build``: the runner image that game days scheduled as CronJobs run in.

Built offline, without docker or a registry (``dirt.sandbox.runner_image``), as an OCI archive; with
``--import`` it goes straight into the sandbox's real node, exactly as ``dirt sandbox image import``
puts any archive there.
"""

from __future__ import annotations

from pathlib import Path

import click

from dirt.cli.sandbox import _name, _target, image_import

_MB = 1e6


@click.group()
def image() -> None:
    """The dirt runner image (dirt, its Python dependencies, kubectl, etcdctl and velero on Debian)."""


@image.command("build")
@click.option("--wheel", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The dirt wheel to install (default: built from this checkout, or repacked from the "
                   "installed dirt).")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Archive to write (default: <cache>/image/dirt-<version>.oci.tar).")
@click.option("--import", "import_", is_flag=True,
              help="Then import it into the sandbox's real node (as `dirt sandbox image import` does).")
@_name
@_target
@click.pass_context
def build(ctx: click.Context, wheel: Path | None, output: Path | None, import_: bool, name: str | None,
          target: str | None) -> None:
    """Build the runner image as an OCI archive, without docker or a container registry: Debian
    bookworm by debootstrap (root needed the first time), the wheels by this machine's pip, the tools
    from the sandbox's binary cache.

    Each layer is cached by its inputs: a second build with the same inputs only writes the archive.
    Use it in a CronJob with `dirt gameday export --cronjob --image dirt.local/dirt:<version>`.
    """
    from dirt.sandbox.runner_image import build_runner_image

    built = build_runner_image(wheel=wheel, output=output, log=lambda m: click.echo(m, err=True))
    click.echo(f"archive     {built.archive}")
    click.echo(f"references  {', '.join(built.references)}")
    click.echo(f"digest      {built.digest}")
    for layer in built.layers:
        click.echo(f"layer       {layer.name:20} {layer.size / _MB:8.1f} MB ({layer.uncompressed_size / _MB:.1f} MB "
                   f"uncompressed){'  cached' if layer.cached else ''}")
    click.echo(f"total       {built.size / _MB:.1f} MB compressed, {built.uncompressed_size / _MB:.1f} MB uncompressed")
    click.echo(f"built in {built.seconds:.0f}s", err=True)
    if import_:
        ctx.invoke(image_import, archive=str(built.archive), name=name, target=target)
