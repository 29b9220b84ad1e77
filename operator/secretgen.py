"""`tessera ensure-secrets`: the Helm chart's generated Secrets, made once in the cluster.

A chart that generates a secret key in its templates (`randAlphaNum` behind `lookup`) mints a new
one on every `helm template` render, because `lookup` answers nothing there: Argo CD renders
every sync that way, and each sync would replace the key that seals stored data. The chart
therefore renders no generated value at all; its pre-install and pre-upgrade hook Job runs this
command, which creates each Secret when it is absent and adds the keys it lacks, and never
changes a value that is already there. Helm does not own these Secrets, so an uninstall keeps
them, and with them the key to the data a reinstall finds. Running it twice, or from two Jobs at
once, leaves one set of values: a key is added with a JSON patch that first tests the Secret's
resourceVersion, and a lost race reads again.

Values are letters and digits (as Helm's `randAlphaNum`, which the earlier chart used), from
`secrets`; they never reach a log line or an error.
"""

from __future__ import annotations

import asyncio
import base64
import re
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.rest import ApiException

from tessera.operator.handlers import kube

ALPHABET = string.ascii_letters + string.digits
MIN_LENGTH, MAX_LENGTH = 16, 256
ATTEMPTS = 5
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_KEY = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")
_LABEL = re.compile(r"^([a-z0-9.-]{1,253}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")


class SpecError(ValueError):
    """A `--secret` or `--label` argument that does not parse."""


@dataclass(frozen=True)
class Wanted:
    """One Secret and the generated keys it must hold, with their lengths."""

    name: str
    keys: Mapping[str, int]

    @classmethod
    def parse(cls, text: str) -> Wanted:
        """`NAME:KEY=LENGTH[,KEY=LENGTH...]`, e.g. `rel-secrets:secret-key=64,bootstrap-token=64`
        (a Secret's name, then its keys with the length of each generated value)."""
        name, sep, rest = text.partition(":")
        if not sep or not _NAME.match(name):
            raise SpecError(f"{text!r}: expected NAME:KEY=LENGTH[,KEY=LENGTH...]")
        keys: dict[str, int] = {}
        for item in rest.split(","):
            key, sep, length = item.partition("=")
            if not sep or not _KEY.match(key) or not length.isdigit():
                raise SpecError(f"{text!r}: {item!r} is not KEY=LENGTH")
            if not MIN_LENGTH <= int(length) <= MAX_LENGTH:
                raise SpecError(f"{text!r}: lengths are {MIN_LENGTH} to {MAX_LENGTH}")
            keys[key] = int(length)
        return cls(name, keys)


def parse_labels(items: list[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not _LABEL.match(key) or (value and not _LABEL.match(value)):
            raise SpecError(f"{item!r} is not a label KEY=VALUE")
        labels[key] = value
    return labels


def generate(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def _encoded(length: int) -> str:
    return base64.b64encode(generate(length).encode()).decode()


async def ensure(
    api: client.ApiClient,
    namespace: str,
    wanted: Wanted,
    labels: Mapping[str, str] | None = None,
) -> list[str]:
    """Make Secret `wanted.name` hold every key of `wanted`; the keys it generated, sorted."""
    core = client.CoreV1Api(api)
    for _ in range(ATTEMPTS):
        existing = await kube.read_secret(api, namespace, wanted.name)
        if existing is None:
            body = {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "Opaque",
                "metadata": {"name": wanted.name, "labels": dict(labels or {})},
                "data": {key: _encoded(n) for key, n in sorted(wanted.keys.items())},
            }
            try:
                await core.create_namespaced_secret(namespace, cast(Any, body))
            except ApiException as exc:
                if exc.status == 409:  # made meanwhile by another run: read it again
                    continue
                raise kube.KubeUnavailable(
                    f"create Secret {wanted.name}: Kubernetes API answered {exc.status}"
                ) from None
            return sorted(wanted.keys)
        have = existing.data or {}
        missing = sorted(key for key in wanted.keys if key not in have)
        if not missing:
            return []
        ops: list[dict[str, Any]] = [
            {
                "op": "test",
                "path": "/metadata/resourceVersion",
                "value": existing.metadata.resource_version,
            }
        ]
        if existing.data is None:
            ops.append({"op": "add", "path": "/data", "value": {}})
        ops += [
            {"op": "add", "path": f"/data/{_pointer(key)}", "value": _encoded(wanted.keys[key])}
            for key in missing
        ]
        try:
            # The client's stubs omit `_content_type`, which it honours at run time.
            await core.patch_namespaced_secret(  # type: ignore[call-arg]
                wanted.name, namespace, cast(Any, ops), _content_type="application/json-patch+json"
            )
        except ApiException as exc:
            if exc.status in (409, 422):  # changed since it was read: read it again
                continue
            raise kube.KubeUnavailable(
                f"patch Secret {wanted.name}: Kubernetes API answered {exc.status}"
            ) from None
        return missing
    raise kube.KubeUnavailable(f"Secret {wanted.name}: still changing after {ATTEMPTS} attempts")


def _pointer(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


async def run(namespace: str, wanted: list[Wanted], labels: Mapping[str, str]) -> list[str]:
    """Ensure every Secret; one line per Secret saying what was generated (never a value)."""
    lines: list[str] = []
    async with await kube.connect() as api:
        for item in wanted:
            made = await ensure(api, namespace, item, labels)
            what = ", ".join(made) if made else "nothing (all keys present)"
            lines.append(f"Secret {namespace}/{item.name}: generated {what}")
    return lines


def main(namespace: str, specs: list[str], label_items: list[str]) -> int:
    try:
        wanted = [Wanted.parse(spec) for spec in specs]
        labels = parse_labels(label_items)
    except SpecError as exc:
        print(f"ensure-secrets: {exc}")
        return 2
    if not wanted:
        print("ensure-secrets: name at least one --secret")
        return 2
    try:
        lines = asyncio.run(run(namespace, wanted, labels))
    except kube.KubeUnavailable as exc:
        print(f"ensure-secrets: {exc}")
        return 1
    except (config.ConfigException, OSError, aiohttp.ClientError) as exc:
        print(f"ensure-secrets: no Kubernetes API to talk to ({type(exc).__name__})")
        return 1
    print(*lines, sep="\n")
    return 0
