"""Point in-process extensions (Chaos Toolkit's ``chaosk8s``) at a drill's cluster.

``chaosk8s`` builds its Kubernetes client from the environment (``KUBECONFIG``,
``KUBERNETES_CONTEXT``) and then loads the kubernetes library's *default*
kubeconfig, a location that library fixes once, when it is first imported (by
dirt's own client, long before a drill runs).  Setting ``KUBECONFIG`` alone
would make such an extension read ``~/.kube/config``: the operator's own
cluster, not the target.  So both are set for the duration of one call, one
call at a time, and put back afterwards.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

_lock = threading.RLock()


@contextlib.contextmanager
def default_kubeconfig(path: str | None, context: str | None = None) -> Iterator[None]:
    """While inside: ``KUBECONFIG``, ``KUBERNETES_CONTEXT`` and the kubernetes library's default
    kubeconfig name ``path`` and ``context`` (unset when None).  Serialised: they are process-wide."""
    from kubernetes.config import kube_config

    wanted = {"KUBECONFIG": path, "KUBERNETES_CONTEXT": context}
    with _lock:
        saved_env = {key: os.environ.get(key) for key in wanted}
        saved_default = kube_config.KUBE_CONFIG_DEFAULT_LOCATION
        try:
            for key, value in wanted.items():
                _set_env(key, value)
            if path:
                kube_config.KUBE_CONFIG_DEFAULT_LOCATION = path
            yield
        finally:
            for key, value in saved_env.items():
                _set_env(key, value)
            kube_config.KUBE_CONFIG_DEFAULT_LOCATION = saved_default


def _set_env(key: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(key, None)
    else:
        os.environ[key] = value
