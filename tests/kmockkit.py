"""A Kubernetes API server for the operator tests: kmock's emulator plus the apiserver behaviours
Kopf and kubectl rely on, and a kubeconfig pointing at it.

kmock 0.8 (pinned) stores objects as sent. The subclass adds what a real apiserver does and Kopf
needs (see the team's research notes on operator testing):
  1. `metadata.resourceVersion`, `uid`, `creationTimestamp`, `generation` (bumped when a merge
     patch of the main resource touches `spec`), and the namespace from the URL;
  2. a failed JSON-patch `test` operation answers 422 (kmock says 500, which Kopf gives up on);
  3. a watch marks the event bus before replaying existing objects, so nothing written during the
     replay is lost, and skips objects no newer than the requested resourceVersion;
  4. list answers carry `kind`/`apiVersion` and a numeric resourceVersion (kubectl needs both);
  5. `/api/v1` discovery says `groupVersion: v1`, not `/v1` (else kubectl finds no Secrets);
  6. watch streams are `application/json` (client-go refuses `application/octet-stream`);
  7. subresources (`x/status`) carry no short names or categories in discovery (kmock copies
     the resource's, and kubectl then resolves `get <shortname>` to the subresource).
Two changes keep it fast with thousands of objects and requests (the operator benchmark):
  8. a served request (a watch: once it streams) is forgotten: kmock logs every request forever
     and, to pick a reaction, re-filters the whole log on every request (quadratic); no test
     asserts on that log;
  9. a request naming one object finds it by its key, not by scanning every stored object.
It uses private hooks of kmock 0.8 (`_serve_*`, `_buses`, `_lock`, the name-mangled object
lookup), hence the exact pin in pyproject.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import itertools
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import jsonpatch
import kmock

from tessera.operator import resources

GROUP, VERSION = "tessera.dev", "v1alpha1"
PROVIDERS = f"{GROUP}/{VERSION}/oauth2providers"
APPLICATIONS = f"{GROUP}/{VERSION}/applications"
SECRETS = "v1/secrets"
EVENTS = "v1/events"
_VERBS = {"get", "list", "watch", "create", "patch", "delete"}


class Emulator(kmock.KubernetesEmulator):  # type: ignore[misc]
    """kmock's in-memory apiserver with resourceVersions, generations and a race-free watch."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._versions = itertools.count(1)
        self.last_rv = 0
        (self**-1e9)[kmock.action.WATCH] << kmock.Response(
            headers={"Content-Type": "application/json"}, payload=self._serve_watch
        )

    def _next_rv(self) -> str:
        self.last_rv = next(self._versions)
        return str(self.last_rv)

    def _stamp(self, request: Any) -> None:
        act, data = request.action, request.data
        if act == kmock.action.CREATE and isinstance(data, Mapping):
            meta = data.setdefault("metadata", {})
            if request.namespace:
                meta.setdefault("namespace", request.namespace)
            if not meta.get("name") and meta.get("generateName"):  # Kopf's Events use it
                meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", dt.datetime.now(dt.UTC).strftime(_TIME))
            meta.setdefault("generation", 1)
            meta["resourceVersion"] = self._next_rv()
        elif act == kmock.action.UPDATE and isinstance(data, Mapping):
            meta = data.setdefault("metadata", {})
            meta["resourceVersion"] = self._next_rv()
            key = (request.resource, request.namespace, request.name)
            if "spec" in data and request.subresource is None and key in self.objects:
                stored = self.objects[key]
                if not stored.deleted:
                    meta["generation"] = stored.get("metadata", {}).get("generation", 1) + 1
        elif act == kmock.action.UPDATE and isinstance(data, list):
            data.append(
                {"op": "replace", "path": "/metadata/resourceVersion", "value": self._next_rv()}
            )

    async def _handle(self, request: Any) -> Any:
        if request.resource is not None and request.action is not None:
            self._stamp(request)
        try:
            return await super()._handle(request)
        except (jsonpatch.JsonPatchTestFailed, jsonpatch.JsonPatchConflict) as exc:
            raise kmock.KubernetesError(status=422, reason="Invalid", message=str(exc)) from None
        finally:
            self._forget(request)

    def _forget(self, request: Any) -> None:
        """Drop a served request from kmock's logs (only requests in flight stay there)."""
        self._requests[:] = [r for r in self._requests if r is not request]
        for payload in self._payloads:
            if payload._requests:
                payload._requests[:] = [r for r in payload._requests if r is not request]

    def _KubernetesEmulator__get_objs(self, request: Any, strict: bool) -> list[Any]:
        """kmock's object lookup, by key when the request names one object."""
        if request.name is not None and (strict or request.namespace is not None):
            key = (request.resource, request.namespace, request.name)
            return [self.objects[key]] if key in self.objects else []
        found: list[Any] = super()._KubernetesEmulator__get_objs(request, strict)
        return found

    async def _serve_list(self, request: Any) -> Any:
        result = await super()._serve_list(request)
        res = request.resource
        known = {r: self.resources[r] for r in list(self.resources)}
        info = known.get(res)
        kind = info.kind if info is not None and info.kind else res.plural.capitalize()
        api_version = f"{res.group}/{res.version}".lstrip("/")
        return {
            "apiVersion": api_version,
            "kind": f"{kind}List",
            **result,
            "metadata": {"resourceVersion": str(self.last_rv)},
        }

    async def _serve_watch(self, request: Any) -> AsyncIterator[Any]:
        self._forget(request)  # served from here on: kmock need not re-filter it for each request
        yield b""
        since = request.params.get("resourceVersion", "")
        since_rv = int(since) if since.isdigit() else 0
        bus = self._buses[request.resource]
        async with self._lock:  # writers publish under this lock: no event is lost
            mark = await bus.mark()
            objs = self._KubernetesEmulator__get_objs(request, strict=False)
            replay = [
                {"type": "ADDED", "object": o.raw}
                for o in objs
                if not o.deleted and _rv(o.get("metadata", {})) > since_rv
            ]
        try:
            for event in replay:
                yield event
            async for event in bus.stream(since=mark):
                meta = event.get("object", {}).get("metadata", {})
                if self._KubernetesEmulator__check(
                    request, request.resource, meta.get("namespace"), meta.get("name"), strict=False
                ):
                    yield event
        finally:
            await bus.unmark(mark)

    async def _serve_version(self, request: Any) -> Any:
        result = await super()._serve_version(request)
        if isinstance(result, dict) and str(result.get("groupVersion", "")).startswith("/"):
            result["groupVersion"] = result["groupVersion"][1:]
        for entry in result.get("resources", []) if isinstance(result, dict) else []:
            if "/" in entry.get("name", ""):  # a subresource: no names of its own to match
                entry.update(shortNames=[], categories=[], singularName="", verbs=["get", "patch"])
        return result

    def alive(self, resource: str, namespace: str, name: str) -> bool:
        try:
            return not self.objects[resource, namespace, name].deleted
        except KeyError:
            return False

    def get(self, resource: str, namespace: str, name: str) -> dict[str, Any]:
        """The stored object as plain dicts (KeyError when absent or deleted)."""
        if not self.alive(resource, namespace, name):
            raise KeyError((resource, namespace, name))
        raw: dict[str, Any] = self.objects[resource, namespace, name].raw
        return raw


_TIME = "%Y-%m-%dT%H:%M:%SZ"


@dataclasses.dataclass
class Cluster:
    """The emulated API server, its URL and a kubeconfig for it (also in $KUBECONFIG)."""

    api: Emulator
    url: str
    kubeconfig: Path


def _rv(meta: Mapping[str, Any]) -> int:
    value = str(meta.get("resourceVersion", "0") or "0")
    return int(value) if value.isdigit() else 0


def declare(emulator: kmock.KubernetesEmulator) -> None:
    """Discovery for the built-in groups (kmock's bundled snapshot) and the tessera.dev kinds."""
    emulator.resources.load_bundled()
    for kind in resources.KINDS:  # as the CRDs declare them
        emulator.resources[f"{GROUP}/{VERSION}/{kind.plural}"] = kmock.ResourceInfo(
            kind=kind.kind,
            singular=kind.singular,
            namespaced=True,
            shortnames=set(kind.short_names),
            categories={resources.common.CATEGORY},
            subresources={"status"},
            verbs=_VERBS,
        )


# Kinds some clusters serve through CRDs of other projects (none in kmock's bundled snapshot).
OPTIONAL = {
    "traefik.io/v1alpha1/middlewares": ("Middleware", "middleware"),
    "monitoring.coreos.com/v1/servicemonitors": ("ServiceMonitor", "servicemonitor"),
}


def declare_optional(emulator: kmock.KubernetesEmulator) -> None:
    """Serve Traefik's Middleware and the Prometheus Operator's ServiceMonitor, as a cluster with
    those CRDs installed does."""
    for resource, (kind, singular) in OPTIONAL.items():
        emulator.resources[resource] = kmock.ResourceInfo(
            kind=kind, singular=singular, namespaced=True, verbs=_VERBS
        )


def kubeconfig(path: Path, server: str, namespace: str = "default") -> Path:
    """A kubeconfig for `server` with a dummy token (the emulator checks no credentials)."""
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        f'clusters: [{{name: kmock, cluster: {{server: "{server}"}}}}]\n'
        "users: [{name: tester, user: {token: kmock-does-not-check}}]\n"
        f"contexts: [{{name: kmock, context: {{cluster: kmock, user: tester, "
        f"namespace: {namespace}}}}}]\n"
        "current-context: kmock\n"
    )
    return path


async def eventually(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Poll `check` until it returns a true value (KeyError/AssertionError mean "not yet")."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: BaseException | None = None
    while loop.time() < deadline:
        try:
            result = check()
            if result:
                return result
        except (KeyError, AssertionError, IndexError, TypeError) as exc:
            last = exc
        await asyncio.sleep(0.05)
    raise AssertionError(f"not reached within {timeout}s (last: {last!r})")
