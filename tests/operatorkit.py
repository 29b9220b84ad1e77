"""Helpers of the operator tests: a real core for the operator to talk to, custom resource
manifests, and reading back what the operator wrote into the emulated API server (kmockkit)."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web
from helpers import (
    BOOTSTRAP_PASSWORD,
    BOOTSTRAP_TOKEN,
    SECRET_KEY,
    TESSERA,
    Server,
    base_env,
    free_port,
)
from kmockkit import GROUP, VERSION, Cluster, eventually

from tessera.operator.resources import common


def start_core(tmp_path: Path, port: int | None = None) -> Server:
    """A `tessera server` on SQLite whose bootstrap token is a superuser API token."""
    port = port or free_port()
    env = base_env(
        AUTHENTIK_SECRET_KEY=SECRET_KEY,
        AUTHENTIK_BOOTSTRAP_PASSWORD=BOOTSTRAP_PASSWORD,
        AUTHENTIK_BOOTSTRAP_TOKEN=BOOTSTRAP_TOKEN,
        AUTHENTIK_WEB__PUBLIC_URL=f"http://127.0.0.1:{port}",
    )
    server = Server(env, tmp_path, port=port)
    server.wait_ready()
    return server


@contextlib.asynccontextmanager
async def serve(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> AsyncIterator[str]:
    """An HTTP server on a free local port that answers every method and path with `handler`
    (a stand-in core or Kubernetes API, or a proxy to one); yields its base URL."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def admin(server: Server, method: str, path: str, body: Any = None, **headers: str) -> Any:
    """An admin API call with the bootstrap token; asserts success."""
    status, answer = server.request(method, "/api/v3/" + path, BOOTSTRAP_TOKEN, body)
    assert status in (200, 201, 204), (method, path, status, answer)
    return answer


# Custom resources ------------------------------------------------------------------------------


def provider(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    """An OAuth2Provider manifest; its credentials Secret is `<name>-oidc` unless given."""
    spec.setdefault("credentialsSecret", {"name": f"{name}-oidc"})
    spec.setdefault(
        "redirectURIs", [{"url": f"http://{name}.example/cb", "matchingMode": "strict"}]
    )
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "OAuth2Provider",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def application(name: str, namespace: str, slug: str, **spec: Any) -> dict[str, Any]:
    """An Application manifest served by the provider of the same name unless told otherwise."""
    spec.setdefault("providerRef", {"kind": "OAuth2Provider", "name": name})
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Application",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"name": name.title(), "slug": slug, **spec},
    }


def proxy_provider(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    """A ProxyProvider manifest in forward_single mode for `https://<name>.example.com`."""
    spec.setdefault("mode", "forward_single")
    spec.setdefault("externalHost", f"https://{name}.example.com")
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ProxyProvider",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def saml_provider(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    """A SAMLProvider manifest for an SP at `https://<name>.example.com`; its metadata ConfigMap
    is `<name>-idp` unless given."""
    spec.setdefault("acsURL", f"https://{name}.example.com/saml/acs")
    spec.setdefault("metadataConfigMap", {"name": f"{name}-idp"})
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "SAMLProvider",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def sp_metadata_xml(
    entity: str, acs: str, cert_pem: str | None = None, sls: str | None = None
) -> str:
    """A service provider's SAML metadata: its entity ID, an HTTP-POST ACS, an optional
    HTTP-Redirect SLS and an optional signing certificate (PEM)."""
    key = ""
    if cert_pem is not None:
        body = "".join(line for line in cert_pem.splitlines() if "-----" not in line)
        key = (
            '<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data>'
            f"<ds:X509Certificate>{body}</ds:X509Certificate>"
            "</ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"
        )
    logout = (
        '<md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" '
        f'Location="{sls}"/>'
        if sls
        else ""
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" '
        f'xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{entity}">'
        f'<md:SPSSODescriptor AuthnRequestsSigned="{"true" if key else "false"}" '
        'protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
        f"{key}{logout}"
        '<md:AssertionConsumerService index="0" '
        f'Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{acs}"/>'
        "</md:SPSSODescriptor></md:EntityDescriptor>"
    )


def ldap_provider(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    """An LDAPProvider manifest with base DN `dc=<name>,dc=<namespace>`; its connection Secret is
    `<name>-ldap` unless given."""
    spec.setdefault("baseDN", f"dc={name},dc={namespace}")
    spec.setdefault("connectionSecret", {"name": f"{name}-ldap"})
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "LDAPProvider",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def outpost(name: str, namespace: str, *providers: str, **spec: Any) -> dict[str, Any]:
    """A proxy Outpost manifest serving the named ProxyProviders."""
    spec.setdefault("type", "proxy")
    spec.setdefault("providerRefs", [{"kind": "ProxyProvider", "name": p} for p in providers])
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Outpost",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


PLURALS = {
    "OAuth2Provider": "oauth2providers",
    "Application": "applications",
    "ProxyProvider": "proxyproviders",
    "Outpost": "outposts",
    "SAMLProvider": "samlproviders",
    "LDAPProvider": "ldapproviders",
}


def url_of(manifest: dict[str, Any], name: str | None = None) -> str:
    """The collection URL of a manifest's kind (or one object's URL with `name`)."""
    plural = PLURALS.get(manifest["kind"])
    ns = manifest["metadata"]["namespace"]
    base = (
        f"/apis/{GROUP}/{VERSION}/namespaces/{ns}/{plural}"
        if plural
        else f"/api/v1/namespaces/{ns}/{manifest['kind'].lower()}s"
    )
    return f"{base}/{name}" if name else base


def resource_of(manifest: dict[str, Any]) -> str:
    return f"{GROUP}/{VERSION}/{PLURALS[manifest['kind']]}"


async def create(cluster: Cluster, manifest: dict[str, Any]) -> None:
    answer = await cluster.api.post(url_of(manifest), json=manifest)
    assert answer.status in (200, 201), await answer.text()


async def patch_spec(cluster: Cluster, manifest: dict[str, Any], spec: dict[str, Any]) -> None:
    answer = await cluster.api.patch(
        url_of(manifest, manifest["metadata"]["name"]),
        json={"spec": spec},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert answer.status == 200, await answer.text()


async def delete(cluster: Cluster, manifest: dict[str, Any]) -> None:
    answer = await cluster.api.delete(url_of(manifest, manifest["metadata"]["name"]))
    assert answer.status == 200, await answer.text()


def stored(cluster: Cluster, manifest: dict[str, Any]) -> dict[str, Any]:
    meta = manifest["metadata"]
    return cluster.api.get(resource_of(manifest), meta["namespace"], meta["name"])


def ready(cluster: Cluster, manifest: dict[str, Any]) -> dict[str, Any]:
    """The Ready condition of the stored resource (KeyError while there is none)."""
    conditions = stored(cluster, manifest).get("status", {}).get("conditions", [])
    found = [c for c in conditions if c["type"] == "Ready"]
    if not found:
        raise KeyError("Ready")
    condition: dict[str, Any] = found[0]
    return condition


async def is_ready(cluster: Cluster, *manifests: dict[str, Any], timeout: float = 30) -> None:
    """Wait until each stored resource's Ready condition is True."""
    for m in manifests:
        await eventually(lambda m=m: ready(cluster, m)["status"] == "True", timeout)


async def not_ready(cluster: Cluster, manifest: dict[str, Any], reason: str) -> dict[str, Any]:
    """Wait for the stored resource's Ready condition with `reason`, which must be False."""
    condition: dict[str, Any] = await eventually(
        lambda: ready(cluster, manifest)["reason"] == reason and ready(cluster, manifest), 30
    )
    assert condition["status"] == "False"
    return condition


def marker(cluster: Cluster, manifest: dict[str, Any]) -> str:
    """The `managed` value the operator gives the core object of a stored resource."""
    meta = stored(cluster, manifest)["metadata"]
    return common.managed_value(manifest["kind"], meta["namespace"], meta["name"], meta["uid"])


def core_object(
    core: Server, cluster: Cluster, path: str, manifest: dict[str, Any]
) -> dict[str, Any]:
    """The one core object at admin `path` (`providers/saml/`) that the operator made for a
    stored resource, found by its `managed` value."""
    query = "managed__iexact" if path.startswith("outposts/") else "managed"
    found = admin(core, "GET", f"{path}?{query}={marker(cluster, manifest)}")
    assert len(found["results"]) == 1, found
    result: dict[str, Any] = found["results"][0]
    return result


def events(cluster: Cluster, namespace: str, name: str) -> list[dict[str, Any]]:
    """The Kubernetes Events posted about object `name`."""
    found = []
    for key in list(cluster.api.objects):
        resource, ns, _ = key
        obj = cluster.api.objects[key]
        if obj.deleted or ns != namespace or resource.plural != "events":
            continue
        raw = obj.raw
        if raw.get("involvedObject", {}).get("name") == name:
            found.append(raw)
    return found


def secret(cluster: Cluster, namespace: str, name: str) -> dict[str, str]:
    """A Secret's data, decoded (KeyError while it does not exist)."""
    raw = cluster.api.get("v1/secrets", namespace, name)
    return {k: base64.b64decode(v).decode() for k, v in (raw.get("data") or {}).items()}


def config_map(cluster: Cluster, namespace: str, name: str) -> dict[str, str]:
    """A ConfigMap's data (KeyError while it does not exist)."""
    raw = cluster.api.get("v1/configmaps", namespace, name)
    return dict(raw.get("data") or {})


# Running a pod's container as a local process -----------------------------------------------


@dataclasses.dataclass
class Container:
    """A container of a Deployment started as a process, as a kubelet would start it."""

    proc: subprocess.Popen[bytes]
    env: dict[str, str]
    ports: dict[str, int]  # port name -> containerPort
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)


def container_env(
    container: Mapping[str, Any],
    secrets: Mapping[str, Mapping[str, str]],
    mounts: Mapping[str, str],
) -> dict[str, str]:
    """The container's environment: literal values, and `secretKeyRef`s read from `secrets`
    (name -> decoded data); a value under a volume's mount path is moved to where `mounts` put
    that volume on this machine."""
    env: dict[str, str] = {}
    for item in container.get("env") or []:
        if "valueFrom" in item:
            ref = item["valueFrom"]["secretKeyRef"]
            value = secrets[ref["name"]][ref["key"]]
        else:
            value = str(item.get("value", ""))
        for mount_path, local in mounts.items():
            if value == mount_path or value.startswith(mount_path.rstrip("/") + "/"):
                value = local + value[len(mount_path.rstrip("/")) :]
        env[item["name"]] = value
    return env


def start_container(
    deployment: Mapping[str, Any], secrets: Mapping[str, Mapping[str, str]], workdir: Path
) -> Container:
    """Start the Deployment's (only) container: its command and args, its environment resolved
    from the Secrets, each emptyDir a fresh folder under `workdir`. The command `tessera` is this
    environment's installed one (the image's entry point)."""
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    mounts = {}
    for mount in container.get("volumeMounts") or []:
        (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
        assert "emptyDir" in volume, volume
        local = workdir / "volumes" / mount["name"]
        local.mkdir(parents=True, exist_ok=True)
        mounts[mount["mountPath"]] = str(local)
    env = container_env(container, secrets, mounts)
    command = [*container["command"], *container.get("args", [])]
    assert command[0] == "tessera", command
    log = workdir / f"{container['name']}.log"
    handle = log.open("wb")
    proc = subprocess.Popen(
        [TESSERA, *command[1:]],
        env=base_env(**env),
        cwd=workdir,
        stdout=handle,
        stderr=subprocess.STDOUT,
    )
    handle.close()
    ports = {p["name"]: int(p["containerPort"]) for p in container.get("ports") or []}
    return Container(proc, env, ports, log)
