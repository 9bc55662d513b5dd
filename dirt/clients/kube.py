"""The one place dirt talks to the Kubernetes API.

Everything else (faults, checks, recovery, targets) goes through ``KubeClient``;
``.importlinter`` keeps the ``kubernetes`` package out of every other module.
Failures become dirt's own errors (``APINotFoundError``, ``APIConflictError``,
``APIForbiddenError``, ``APIUnavailableError``) with the cause kept
(``raise ... from``) and response bodies trimmed to their ``message`` — a
Secret's data never reaches a log, the journal or a report through an error.
Objects are plain dicts (the API's JSON), so drivers stay simple to test.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from collections.abc import Iterator
from typing import Any

from dirt.clients.credentials import client_secrets, kubeconfig_secrets
from dirt.core.errors import (
    APIConflictError,
    APIForbiddenError,
    APINotFoundError,
    APIUnavailableError,
    KubeError,
)

REQUEST_TIMEOUT = 15.0

#: Kinds whose objects are cluster-scoped among the ones dirt handles by default.
CORE_KINDS = {
    "Namespace": "v1", "Node": "v1", "Pod": "v1", "Service": "v1", "ConfigMap": "v1", "Secret": "v1",
    "ServiceAccount": "v1", "PersistentVolumeClaim": "v1", "Deployment": "apps/v1", "StatefulSet": "apps/v1",
    "DaemonSet": "apps/v1", "ReplicaSet": "apps/v1", "Job": "batch/v1", "CronJob": "batch/v1",
    "NetworkPolicy": "networking.k8s.io/v1", "Ingress": "networking.k8s.io/v1",
    "PodDisruptionBudget": "policy/v1", "Role": "rbac.authorization.k8s.io/v1",
    "RoleBinding": "rbac.authorization.k8s.io/v1", "CustomResourceDefinition": "apiextensions.k8s.io/v1",
}


def _message(exc: Any) -> str:
    """The API's own one-line message, never the raw body."""
    body = getattr(exc, "body", None)
    if body:
        try:
            data = json.loads(body)
            if isinstance(data, dict) and data.get("message"):
                return str(data["message"])[:300]
        except (ValueError, TypeError):
            pass
    reason = getattr(exc, "reason", None) or type(exc).__name__
    return str(reason)[:300]


@contextlib.contextmanager
def translated(what: str) -> Iterator[None]:
    """Turn the kubernetes client's and urllib3's exceptions into dirt's."""
    from kubernetes.client.exceptions import ApiException
    from kubernetes.dynamic.exceptions import DynamicApiError, ResourceNotFoundError
    from urllib3.exceptions import HTTPError as Urllib3Error

    try:
        yield
    except (ApiException, DynamicApiError) as exc:
        status = getattr(exc, "status", None)
        message = f"{what}: {_message(exc)}"
        if status == 404:
            raise APINotFoundError(message, status=status) from exc
        if status == 409:
            raise APIConflictError(message, status=status) from exc
        if status in (401, 403):
            raise APIForbiddenError(message, status=status) from exc
        if status is None or status >= 500 or status == 429:
            raise APIUnavailableError(message, status=status) from exc
        raise KubeError(message, status=status) from exc
    except ResourceNotFoundError as exc:
        raise APINotFoundError(f"{what}: the API server does not serve this kind ({exc})") from exc
    except (Urllib3Error, ConnectionError, OSError) as exc:
        raise APIUnavailableError(f"{what}: API server unreachable ({type(exc).__name__})") from exc


class KubeClient:
    """A thin, typed layer over the dynamic client."""

    def __init__(self, api_client: Any, *, server: str = "") -> None:
        self.api_client = api_client
        self.server = server
        self._dynamic: Any = None

    @classmethod
    def from_kubeconfig(cls, path: str, context: str | None = None) -> KubeClient:
        from kubernetes import config

        with translated(f"loading kubeconfig {path}"):
            try:
                api_client = config.new_client_from_config(config_file=path, context=context)
            except config.ConfigException as exc:
                raise KubeError(f"kubeconfig {path}: {exc}") from exc
        # Its credentials, and the token a plugin just returned, are masked wherever they show up.
        kubeconfig_secrets(path)
        client_secrets(api_client.configuration)
        # Retry a refused connection (a restarting API server) and a 429/503 that says when to
        # come back (a busy one), never a read that timed out: urllib3's default (3 of each)
        # turns one 15 s timeout into a minute while etcd is down.
        from urllib3.util.retry import Retry

        api_client.rest_client.pool_manager.connection_pool_kw["retries"] = Retry(
            total=5, connect=2, read=0, status=3, backoff_factor=0.2)
        return cls(api_client, server=api_client.configuration.host)

    @property
    def dynamic(self) -> Any:
        dynamic = self._dynamic
        if dynamic is None:
            from kubernetes.dynamic import DynamicClient

            with translated("API discovery"):
                dynamic = self._dynamic = DynamicClient(self.api_client, discoverer=_in_memory_discoverer())
        return dynamic

    def refresh_discovery(self) -> None:
        """Forget what discovery found: the next call asks the API server again, so kinds of
        CustomResourceDefinitions installed since (or removed since) are seen as they are now."""
        self._dynamic = None

    def resource(self, api_version: str, kind: str) -> Any:
        with translated(f"{kind} ({api_version})"):
            return self.dynamic.resources.get(api_version=api_version, kind=kind)

    # -- reads -------------------------------------------------------------------------
    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None, *,
            timeout: float = REQUEST_TIMEOUT) -> dict[str, Any]:
        res = self.resource(api_version, kind)
        with translated(f"get {kind} {_ref(namespace, name)}"):
            return res.get(name=name, namespace=namespace, _request_timeout=timeout).to_dict()

    def find(self, api_version: str, kind: str, name: str, namespace: str | None = None, *,
             timeout: float = REQUEST_TIMEOUT) -> dict[str, Any] | None:
        try:
            return self.get(api_version, kind, name, namespace, timeout=timeout)
        except APINotFoundError:
            return None

    def list(self, api_version: str, kind: str, namespace: str | None = None, *,
             label_selector: str | None = None, field_selector: str | None = None,
             timeout: float = REQUEST_TIMEOUT) -> list[dict[str, Any]]:
        res = self.resource(api_version, kind)
        kwargs: dict[str, Any] = {"_request_timeout": timeout}
        if namespace and res.namespaced:
            kwargs["namespace"] = namespace
        if label_selector:
            kwargs["label_selector"] = label_selector
        if field_selector:
            kwargs["field_selector"] = field_selector
        with translated(f"list {kind}" + (f" in {namespace}" if namespace else "")):
            data = res.get(**kwargs).to_dict()
        items = data.get("items", [])
        for item in items:  # list items come without kind/apiVersion
            item.setdefault("kind", kind)
            item.setdefault("apiVersion", api_version)
        return items

    def readyz(self) -> bool:
        try:
            with translated("readyz"):
                request = self.api_client.param_serialize(method="GET", resource_path="/readyz",
                                                          auth_settings=["BearerToken"])
                response = self.api_client.call_api(*request, _request_timeout=5.0)
                response.read()
            return response.status == 200
        except KubeError:
            return False

    def served_kinds(self, *, namespaced: bool | None = None) -> list[tuple[str, str, bool]]:
        """(apiVersion, kind, namespaced) of every kind that can be listed, read and created (a stored
        object, not a review, a metric or a subresource), preferred versions only.

        Discovery is done afresh on every call: what a backup holds is decided by it, and a CRD
        installed a moment ago must be in it."""
        from kubernetes.dynamic.resource import Resource

        out = []
        seen = set()
        self.refresh_discovery()
        with translated("API discovery"):
            resources = list(self.dynamic.resources.search())
        for res in resources:
            if type(res) is not Resource or "/" in (res.name or ""):  # lists and subresources
                continue
            if not {"list", "get", "create"} <= set(res.verbs or []) or not res.preferred:
                continue
            if namespaced is not None and res.namespaced != namespaced:
                continue
            if (res.group, res.kind) in seen:
                continue
            seen.add((res.group, res.kind))
            out.append((res.group_version, res.kind, bool(res.namespaced)))
        return out

    # -- writes ------------------------------------------------------------------------
    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None, *,
               propagation: str = "Background", grace_period: int | None = None) -> None:
        res = self.resource(api_version, kind)
        body: dict[str, Any] = {"propagationPolicy": propagation}
        if grace_period is not None:
            body["gracePeriodSeconds"] = grace_period
        with translated(f"delete {kind} {_ref(namespace, name)}"):
            res.delete(name=name, namespace=namespace, body=body, _request_timeout=REQUEST_TIMEOUT)

    def apply(self, obj: dict[str, Any], *, field_manager: str = "dirt", force: bool = True) -> dict[str, Any]:
        """Server-side apply of one object (creates or updates it)."""
        api_version, kind = obj["apiVersion"], obj["kind"]
        meta = obj.get("metadata", {})
        res = self.resource(api_version, kind)
        namespace = meta.get("namespace") if res.namespaced else None
        if res.namespaced and not namespace:
            namespace = "default"
            obj = {**obj, "metadata": {**meta, "namespace": namespace}}
        with translated(f"apply {kind} {_ref(namespace, meta.get('name', '?'))}"):
            return res.server_side_apply(body=obj, name=meta["name"], namespace=namespace,
                                         field_manager=field_manager, force_conflicts=force,
                                         _request_timeout=REQUEST_TIMEOUT).to_dict()

    def patch(self, api_version: str, kind: str, name: str, body: dict[str, Any], namespace: str | None = None,
              *, content_type: str = "application/merge-patch+json") -> dict[str, Any]:
        res = self.resource(api_version, kind)
        with translated(f"patch {kind} {_ref(namespace, name)}"):
            return res.patch(name=name, namespace=namespace, body=body, content_type=content_type,
                             _request_timeout=REQUEST_TIMEOUT).to_dict()

    def patch_status(self, api_version: str, kind: str, name: str, status: dict[str, Any],
                     namespace: str | None = None) -> dict[str, Any]:
        res = self.resource(api_version, kind)
        with translated(f"patch {kind} {_ref(namespace, name)} status"):
            return res.status.patch(name=name, namespace=namespace, body={"status": status},
                                    content_type="application/merge-patch+json",
                                    _request_timeout=REQUEST_TIMEOUT).to_dict()

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        res = self.resource(obj["apiVersion"], obj["kind"])
        namespace = obj.get("metadata", {}).get("namespace") if res.namespaced else None
        with translated(f"create {obj['kind']} {_ref(namespace, obj.get('metadata', {}).get('name', '?'))}"):
            return res.create(body=obj, namespace=namespace, _request_timeout=REQUEST_TIMEOUT).to_dict()

    def evict(self, name: str, namespace: str) -> None:
        """Evict a pod through the Eviction API (which honours PodDisruptionBudgets)."""
        body = {"apiVersion": "policy/v1", "kind": "Eviction",
                "metadata": {"name": name, "namespace": namespace}}
        res = self.resource("v1", "Pod")
        with translated(f"evict pod {namespace}/{name}"):
            self.dynamic.request("POST", f"{res.path(name=name, namespace=namespace)}/eviction", body=body,
                                 _request_timeout=REQUEST_TIMEOUT)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.api_client.close()


@functools.cache
def _in_memory_discoverer() -> type:
    """The kubernetes client's lazy discoverer without its cache file.

    By default discovery is kept in one file under the system temp folder, shared by every
    process talking to the same server and not refreshed when CRDs are added: backups then
    silently left out custom resources.  This one keeps discovery in memory, per client."""
    from kubernetes.dynamic.discovery import LazyDiscoverer

    class InMemoryDiscoverer(LazyDiscoverer):  # type: ignore[misc]
        def __init__(self, client: Any, cache_file: str | None) -> None:
            # A path that cannot exist (devnull is no folder): the shared file is never read ...
            super().__init__(client, os.path.join(os.devnull, "dirt-discovery.json"))

        def _write_cache(self) -> None:
            """... and never written."""

    return InMemoryDiscoverer


def _ref(namespace: str | None, name: str) -> str:
    return f"{namespace}/{name}" if namespace else name


#: Annotations the server or its controllers write; not part of what was declared.
SERVER_ANNOTATIONS = {"kubectl.kubernetes.io/last-applied-configuration", "deployment.kubernetes.io/revision"}
SERVER_ANNOTATION_PREFIXES = ("pv.kubernetes.io/", "volume.kubernetes.io/", "volume.beta.kubernetes.io/",
                              "control-plane.alpha.kubernetes.io/")


def strip_server_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """An object as a person would have written it: no status, uid, resourceVersion,
    managed fields, or other fields the server fills in."""
    clean = {k: v for k, v in obj.items() if k not in ("status",)}
    meta = dict(clean.get("metadata") or {})
    for key in ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink",
                "deletionTimestamp", "deletionGracePeriodSeconds", "ownerReferences"):
        meta.pop(key, None)
    annotations = dict(meta.get("annotations") or {})
    for key in list(annotations):
        if key in SERVER_ANNOTATIONS or key.startswith(SERVER_ANNOTATION_PREFIXES):
            annotations.pop(key)
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    clean["metadata"] = meta
    spec = clean.get("spec")
    kind = clean.get("kind")
    if isinstance(spec, dict):
        spec = dict(spec)
        if kind == "Service" and spec.get("clusterIP") != "None":
            # an address the server allocated; "None" is the author's: a headless Service stays headless
            for key in ("clusterIP", "clusterIPs"):
                spec.pop(key, None)
        if kind == "PersistentVolumeClaim":
            spec.pop("volumeName", None)
        clean["spec"] = spec
    return clean
