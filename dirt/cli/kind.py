"""``dirt kind build-image|config|up|down``: real kind clusters on this machine, with no registry.

``build-image`` makes (or finds in the cache) dirt's offline kind node image; ``up`` makes a kind target's
cluster from it, starting a Docker daemon first when none answers; ``down`` deletes the cluster and stops
the daemon if dirt started it (by its PID).  Which cluster: the kind target of dirt.yaml (``--target``,
default: the default target if it is a kind target, else the first one).
"""

from __future__ import annotations

import time
from typing import Any

import click
import yaml

_target = click.option("--target", "-t", help="kind target of dirt.yaml (default: the first kind target).")


def _say(message: str) -> None:
    click.echo(message, err=True)


def _kind_target(ctx: click.Context, target: str | None) -> Any:
    from dirt.core.errors import ConfigError
    from dirt.targets.base import make_target

    loaded = ctx.obj.loaded
    targets = loaded.config.targets
    if target is None:
        default = loaded.config.default_target
        if default in targets and targets[default].provider == "kind":
            target = default
        else:
            target = next((n for n, t in targets.items() if t.provider == "kind"), None)
        if target is None:
            raise ConfigError("dirt.yaml has no kind target: add one (provider: kind, settings: {image: dirt})")
    name, config = loaded.target(target)
    if config.provider != "kind":
        raise ConfigError(f"target {name!r} is a {config.provider} target, not a kind target")
    return make_target(name, config, loaded.root)


def _engine() -> Any:
    from dirt.sandbox.cluster import sandbox_home
    from dirt.sandbox.docker import DockerEngine

    return DockerEngine(sandbox_home() / "docker", log=_say)


@click.group()
def kind() -> None:
    """Real kind clusters made offline: dirt's node image, a Docker daemon when none runs, create and delete."""


@kind.command("build-image")
@click.option("--force", is_flag=True, help="Build again even when the cached archive is there.")
def build_image(force: bool) -> None:
    """Build (or find in the cache) dirt's kind node image: Kubernetes, etcd, CoreDNS, crictl and kind's
    storage provisioner from their Go modules, Debian by debootstrap, the component images preloaded.
    Root is needed the first time; then the archive is reused (and loaded into docker by `dirt kind up`)."""
    from dirt.sandbox.kind_image import build_node_image

    image = build_node_image(log=_say, force=force)
    click.echo(f"tag      {image.tag}")
    click.echo(f"archive  {image.archive} ({image.archive.stat().st_size / 1e6:.0f} MB)")
    click.echo(f"{'built' if image.built else 'cached'} in {image.seconds:.1f}s", err=True)


@kind.command("config")
@_target
@click.pass_context
def config(ctx: click.Context, target: str | None) -> None:
    """Print the kind config dirt writes for its node image on this machine (a start for your own)."""
    from dirt.sandbox.kind_image import cluster_config

    _engine().ensure()
    settings = _kind_target(ctx, target).settings
    click.echo(yaml.safe_dump(cluster_config(workers=settings.workers, worker_labels=settings.worker_labels,
                                             log=_say), sort_keys=False), nl=False)


@kind.command()
@_target
@click.pass_context
def up(ctx: click.Context, target: str | None) -> None:
    """Create the kind target's cluster (idempotent): Docker started when none answers, dirt's node image
    loaded when the target uses it (image: dirt), its monitoring started beside it (monitoring: true).
    Prints the cluster's nodes, kubeconfig and monitoring."""
    chosen = _kind_target(ctx, target)
    started = time.monotonic()
    _engine().ensure()
    if chosen.cluster_exists():
        _say(f"kind cluster {chosen.settings.cluster!r} exists")
    else:
        _say(f"creating kind cluster {chosen.settings.cluster!r} ({chosen.settings.workers} workers)")
        chosen.create_cluster()
    chosen.prepare()
    click.echo(f"cluster     {chosen.settings.cluster}")
    click.echo(f"nodes       {' '.join(chosen.cluster_nodes())}")
    click.echo(f"kubeconfig  {chosen.kubeconfig_path()}")
    if chosen.settings.monitoring:
        click.echo(f"prometheus  {chosen.prometheus.url}")
        click.echo(f"alertmanager {chosen.alertmanager.url}")
    _say(f"ready in {time.monotonic() - started:.1f}s")


@kind.command()
@_target
@click.option("--keep-docker", is_flag=True, help="Leave a Docker daemon dirt started running.")
@click.pass_context
def down(ctx: click.Context, target: str | None, keep_docker: bool) -> None:
    """Delete the kind target's cluster and the monitoring beside it, then stop the Docker daemon if dirt
    started it (never another)."""
    engine = _engine()
    chosen = _kind_target(ctx, target)
    monitoring = chosen.monitoring()
    if monitoring.exists():
        monitoring.down(log=_say)
    if engine.answers():
        if chosen.cluster_exists():
            chosen.delete_cluster()
            _say(f"deleted kind cluster {chosen.settings.cluster!r}")
        from dirt.clients.commands import run
        from dirt.sandbox.kind_image import KIND_NETWORK

        # kind leaves its network behind; gone once no cluster uses it (docker refuses while one does)
        run([chosen.settings.docker_binary, "network", "rm", KIND_NETWORK], timeout=60, what="docker network rm")
    if not keep_docker:
        engine.stop()
