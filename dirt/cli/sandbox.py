"""``dirt sandbox build|up|down|status|kubeconfig|logs``: manage local sandboxes.

Which sandbox: ``--name`` picks one directly; otherwise the settings come from
the sandbox target of dirt.yaml (``--target``, default: the default target if
it is a sandbox, else the first sandbox target), else the built-in defaults.
"""

from __future__ import annotations

import json
from typing import Any

import click


def _sandbox(ctx: click.Context, name: str | None, target: str | None, nodes: int | None = None,
             action: str | None = None, fleet: bool = True) -> Any:
    """The sandbox meant, or the fleet (``fleet``: a command that can manage one); for ``action`` (up,
    down), refused while a drill holds it."""
    from dirt.app.sandbox import refuse_while_drilling, sandbox_target
    from dirt.core.errors import ConfigError
    from dirt.targets.fleet import FleetTarget

    chosen = sandbox_target(ctx.obj.loaded, target, name=name, nodes=nodes)
    if isinstance(chosen, FleetTarget) and not fleet:
        raise ConfigError(f"target {target!r} is a fleet: this command works on one sandbox (each member's "
                          f"kubeconfig is in `dirt sandbox status --target {target}`)")
    if action:
        refuse_while_drilling(chosen, action)
    return chosen.fleet if isinstance(chosen, FleetTarget) else chosen.sandbox


_name = click.option("--name", help="Sandbox name (default: from dirt.yaml, else 'dirt').")
_target = click.option("--target", "-t", help="Sandbox target of dirt.yaml whose settings to use.")


@click.group()
def sandbox() -> None:
    """A real local Kubernetes control plane (no Docker) with Prometheus and Alertmanager."""


@sandbox.command()
@click.option("--force", is_flag=True, help="Rebuild even when a cached build answers the right version.")
@click.option("--velero/--no-velero", default=None,
              help="Also build Velero, its AWS plugin and gofakes3 (default: when the sandbox target runs Velero).")
@click.option("--real-node/--no-real-node", "real_node", default=None,
              help="Also build the kubelet (default: when the sandbox target has a real node).")
@_target
@click.pass_context
def build(ctx: click.Context, force: bool, velero: bool | None, real_node: bool | None, target: str | None) -> None:
    """Build (or find in the cache) the sandbox's binaries: Kubernetes, etcd, kwok, kube-state-metrics,
    Velero's when the sandbox runs it (``settings: {velero: true}``) and the kubelet when it has a real
    node (``settings: {real_nodes: 1}``)."""
    import time

    from dirt.sandbox.binaries import COMPONENTS, REAL_NODE_COMPONENTS, VELERO_COMPONENTS, build_all, cache_root

    if velero is None or real_node is None:
        box = _sandbox(ctx, None, target)
        velero = box.velero if velero is None else velero
        real_node = bool(box.real_nodes) if real_node is None else real_node
    start = time.monotonic()
    folders = build_all(force=force, log=lambda m: click.echo(m, err=True),
                        components=COMPONENTS + (VELERO_COMPONENTS if velero else ())
                        + (REAL_NODE_COMPONENTS if real_node else ()))
    for name, folder in folders.items():
        click.echo(f"{name:20} {folder}")
    click.echo(f"binaries ready in {time.monotonic() - start:.0f}s (cache: {cache_root()})", err=True)


@sandbox.command()
@_name
@_target
@click.option("--nodes", type=int, help="Number of KWOK nodes (default 3).")
@click.option("--timings", is_flag=True, help="Print when each component started, how long its start took, and when "
              "each process first answered its health check.")
@click.pass_context
def up(ctx: click.Context, name: str | None, target: str | None, nodes: int | None, timings: bool) -> None:
    """Create or resume a sandbox; idempotent. Prints where everything is.

    Refused (exit 2) while a drill holds the sandbox: it would restart what the drill stopped.
    """
    box = _sandbox(ctx, name, target, nodes, action="up")
    status = box.up(log=lambda m: click.echo(m, err=True))
    _print_status(status)
    if timings and status.get("up_timings"):
        click.echo(up_timings_text(status["up_timings"], status.get("up_seconds")))


def up_timings_text(timings: dict[str, Any], total: float | None) -> str:
    """Where a sandbox start's time went: when each component's start began and how long it took,
    when each process first answered its health check, and when monitoring had settled."""
    lines = [f"timings: up in {total}s (binaries and settings ready at +{timings.get('prepared')}s)",
             f"  {'component':22} {'start at':>9} {'took':>7}"]
    for component, entry in (timings.get("components") or {}).items():
        lines.append(f"  {component:22} {'+' + str(entry['at']) + 's':>9} {str(entry['seconds']) + 's':>7}")
    lines.append(f"  {'process':22} {'healthy at':>9}")
    for process, at in sorted((timings.get("healthy") or {}).items(), key=lambda item: item[1]):
        lines.append(f"  {process:22} {'+' + str(at) + 's':>9}")
    lines.append(f"  every process healthy at +{timings.get('healthy_at')}s; monitoring settled (targets up, rules "
                 f"evaluated) at +{timings.get('settled_at')}s")
    return "\n".join(lines)


@sandbox.command()
@_name
@_target
@click.pass_context
def down(ctx: click.Context, name: str | None, target: str | None) -> None:
    """Stop every process the sandbox started and remove its state (refused while a drill holds it)."""
    box = _sandbox(ctx, name, target, action="down")
    box.down(log=lambda m: click.echo(m, err=True))


@sandbox.command()
@_name
@_target
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def status(ctx: click.Context, name: str | None, target: str | None, as_json: bool) -> None:
    """Show the sandbox's components (pid, healthy), kubeconfig and monitoring URLs."""
    box = _sandbox(ctx, name, target)
    data = box.status()
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        _print_status(data)
    if not data["exists"] or not all(c["healthy"] for c in data["components"]):
        from dirt.core.errors import TargetError

        down = [c["name"] for c in data["components"] if not c["healthy"]]
        raise TargetError(f"sandbox {data['name']!r} is not up" + (f": {', '.join(down)} not healthy" if down else ""))


@sandbox.command()
@_name
@_target
@click.pass_context
def kubeconfig(ctx: click.Context, name: str | None, target: str | None) -> None:
    """Print the path of the sandbox's kubeconfig (export KUBECONFIG=$(dirt sandbox kubeconfig))."""
    box = _sandbox(ctx, name, target, fleet=False)
    if not box.exists():
        from dirt.core.errors import TargetError

        raise TargetError(f"sandbox {box.name!r} does not exist: run `dirt sandbox up`")
    click.echo(str(box.kubeconfig))


@sandbox.command()
@click.argument("component")
@_name
@_target
@click.option("--lines", "-n", default=50, show_default=True)
@click.pass_context
def logs(ctx: click.Context, component: str, name: str | None, target: str | None, lines: int) -> None:
    """Print the last lines of a component's log (e.g. kube-apiserver, etcd, prometheus)."""
    box = _sandbox(ctx, name, target)
    path = box.log_path(component)
    if not path.exists():
        from dirt.core.errors import TargetError

        raise TargetError(f"no log for {component} yet ({path})")
    text = path.read_text(errors="replace").splitlines()[-lines:]
    click.echo("\n".join(text))


@sandbox.group()
def image() -> None:
    """Container images for the sandbox's real node, made and imported locally (no registry)."""


@image.command("build")
@_name
@_target
@click.pass_context
def image_build(ctx: click.Context, name: str | None, target: str | None) -> None:
    """Make the built-in images (pause, busybox) from Debian's busybox-static and import them."""
    box = _sandbox(ctx, name, target, fleet=False)
    imported = box.build_images(log=lambda m: click.echo(m, err=True))
    click.echo("\n".join(imported) if imported else "the built-in images are already imported")


@image.command("import")
@click.argument("archive", type=click.Path(exists=True, dir_okay=False))
@_name
@_target
@click.pass_context
def image_import(ctx: click.Context, archive: str, name: str | None, target: str | None) -> None:
    """Import an image archive (OCI layout tar, or `docker save` output) into the real node's containerd.

    Pods use it by its reference with ``imagePullPolicy: Never``.
    """
    from pathlib import Path

    box = _sandbox(ctx, name, target, fleet=False)
    for reference in box.import_image(Path(archive)):
        click.echo(reference)


@image.command("list")
@_name
@_target
@click.pass_context
def image_list(ctx: click.Context, name: str | None, target: str | None) -> None:
    """The images the real node's containerd holds."""
    box = _sandbox(ctx, name, target, fleet=False)
    click.echo("\n".join(box.images()))


def _print_status(data: dict[str, Any]) -> None:
    if data.get("kind") == "fleet":
        click.echo(f"fleet       {data['name']} ({'exists' if data['exists'] else 'not created'})")
        click.echo(f"entry       {data['entry_url']}  (members: "
                   + ", ".join(f"{m} on port {p}" for m, p in data["app_ports"].items()) + ")")
        click.echo(f"prometheus  {data['prometheus_url']}")
        click.echo(f"alertmgr    {data['alertmanager_url']}")
        for member, box in data["members"].items():
            click.echo(f"member      {member}: sandbox {box['name']}, api server {box.get('api_server')}, "
                       f"kubeconfig {box['kubeconfig']}")
        for c in data["components"]:
            state = "healthy" if c["healthy"] else ("running" if c["pid"] else "stopped")
            click.echo(f"  {c['name']:30} {state:8} pid {c['pid'] or '-'}")
        return
    click.echo(f"sandbox     {data['name']} ({'exists' if data['exists'] else 'not created'})")
    click.echo(f"kubeconfig  {data['kubeconfig']}")
    click.echo(f"api server  {data.get('api_server')}")
    click.echo(f"prometheus  {data['prometheus_url']}")
    click.echo(f"alertmgr    {data['alertmanager_url']}")
    for c in data["components"]:
        state = "healthy" if c["healthy"] else ("running" if c["pid"] else "stopped")
        click.echo(f"  {c['name']:24} {state:8} pid {c['pid'] or '-'}")
