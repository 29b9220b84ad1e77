"""What every handler shares: the runtime (clients, metrics, locks), status conditions, and the
mapping of failures to `Ready=False` reasons, Kopf retry semantics and Kubernetes Events.

`tessera.operator.handlers` builds the registry; `providers` and `applications` implement one
reconcile each and call `Reconciler.run` around it. A reconcile raises one of the errors below
(or a client error) and this module decides: retry with backoff (`kopf.TemporaryError`), give up
until the spec changes (`kopf.PermanentError`), wait for the provider's nudge (`handlers.nudge`),
or, from the drift timer, just report.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import datetime as dt
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import kopf
import pydantic
from kubernetes_asyncio import client as kube_client

from tessera.operator import client, metrics
from tessera.operator.handlers import kube, owned
from tessera.operator.resources import READY, Reason


@dataclasses.dataclass(frozen=True)
class Config:
    """The operator's settings (from the environment and the command line, see `main`)."""

    core_url: str
    token: str = dataclasses.field(repr=False)
    browser_url: str = ""
    namespaces: tuple[str, ...] = ()  # empty: every namespace
    resync_seconds: float = 300.0
    retry_base_seconds: float = 5.0
    retry_max_seconds: float = 300.0
    core_timeout_seconds: float = 10.0
    # Reconciles running at once. Kopf starts one per object: 500 resources applied together
    # would otherwise queue thousands of requests in the core, past `core_timeout_seconds`.
    concurrency: int = 16
    # The image of outpost Deployments whose Outpost names none (the operator's own, in the chart).
    outpost_image: str = ""
    # How often an Outpost's status is refreshed: ready replicas, instances the core sees.
    observe_seconds: float = 30.0

    @property
    def public_url(self) -> str:
        """Where applications and browsers reach the core: the issuer's base."""
        return (self.browser_url or self.core_url).rstrip("/")


@dataclasses.dataclass
class Runtime:
    """Per-process state, created at startup and kept in Kopf's `memo`."""

    config: Config
    core: client.CoreClient
    kube: kube_client.ApiClient
    metrics: metrics.Metrics
    locks: collections.defaultdict[str, asyncio.Lock] = dataclasses.field(
        default_factory=lambda: collections.defaultdict(asyncio.Lock)
    )
    slots: asyncio.Semaphore = dataclasses.field(init=False)
    closing: bool = False  # set at cleanup, before the clients close

    def __post_init__(self) -> None:
        self.slots = asyncio.Semaphore(self.config.concurrency)


# Failures a reconcile raises ------------------------------------------------------------------


class Failure(Exception):
    """A reconcile failed for a reason the resource's status should show."""

    reason: Reason = Reason.INVALID_SPEC
    temporary = False
    nudged = False  # another resource's reconcile triggers the next attempt (handlers.nudge)

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidSpec(Failure):
    """The spec (or something it names) is wrong: fixed only by editing the resource."""


class Conflict(Failure):
    reason = Reason.CONFLICT


class ProviderNotReady(Failure):
    """The provider an Application names has no core object yet: its reconcile will nudge us."""

    reason = Reason.PROVIDER_NOT_READY
    nudged = True


class Unavailable(Failure):
    reason = Reason.CORE_UNAVAILABLE
    temporary = True


def classify(exc: Exception) -> Failure:
    """Any failure of a reconcile as a `Failure` with a message safe for status and events."""
    match exc:
        case Failure():
            return exc
        case client.CoreUnavailable() | kube.KubeUnavailable():
            return Unavailable(str(exc))
        case client.Conflict():
            return Conflict(f"the core refused the write: {exc}")
        case client.Invalid():
            return InvalidSpec(f"the core rejected the spec: {exc}")
        case client.NotFound():
            return Unavailable(f"a core object vanished during the reconcile ({exc}); retrying")
        case kube.SecretConflict():
            return Conflict(
                f"spec.credentialsSecret.name: Secret {exc} exists and is not owned by this "
                "resource; the operator does not overwrite it"
            )
        case owned.NotOwned():
            return Conflict(f"{exc} exists and is not owned by this resource")
        case owned.Refused():
            return InvalidSpec(str(exc))
        case pydantic.ValidationError():
            return InvalidSpec(_validation_message(exc))
    raise exc


def _validation_message(exc: pydantic.ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in ("spec", *error["loc"]))
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


# Conditions -----------------------------------------------------------------------------------


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ready_condition(
    previous: Any, status: str, reason: Reason, message: str, generation: int | None
) -> dict[str, Any]:
    """The `Ready` condition; `lastTransitionTime` moves only when `status` flips."""
    old = next(
        (c for c in previous or [] if isinstance(c, Mapping) and c.get("type") == READY), None
    )
    since = old.get("lastTransitionTime") if old and old.get("status") == status else None
    condition = {
        "type": READY,
        "status": status,
        "reason": str(reason),
        "message": message[:32768],
        "lastTransitionTime": since or _now(),
    }
    if generation is not None:
        condition["observedGeneration"] = generation
    return condition


def _previous_ready(status: Mapping[str, Any]) -> tuple[str | None, str | None]:
    for c in status.get("conditions") or []:
        if isinstance(c, Mapping) and c.get("type") == READY:
            return c.get("status"), c.get("reason")
    return None, None


# Running a reconcile --------------------------------------------------------------------------

Reconcile = Callable[[Runtime, kopf.Body], Awaitable[tuple[dict[str, Any], str]]]
Remove = Callable[[Runtime, kopf.Body], Awaitable[str]]
# After a successful reconcile: the status fields it made and the handler's keyword arguments
# (Kopf passes its indexes there).
Then = Callable[[Runtime, kopf.Body, Mapping[str, Any], Mapping[str, Any]], Awaitable[object]]


@dataclasses.dataclass(frozen=True)
class Reconciler:
    """Runs one kind's reconcile for a handler call and reports its outcome."""

    kind: str
    reconcile: Reconcile
    then: Then | None = None

    async def run(
        self,
        memo: kopf.Memo,
        body: kopf.Body,
        patch: kopf.Patch,
        retry: int,
        *,
        timer: bool,
        kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        rt: Runtime = memo["runtime"]
        generation = body.metadata.get("generation")
        started = time.perf_counter()
        try:
            # Never two reconciles of one object; at most `concurrency` reconciles in all.
            async with rt.locks[body.metadata.uid or ""], rt.slots:
                fields, message = await self.reconcile(rt, body)
                if self.then is not None:
                    await self.then(rt, body, fields, kwargs or {})
        except Exception as exc:
            failure = classify(exc)
            self._report(rt, body, patch, "False", failure.reason, failure.message, generation)
            rt.metrics.errors.labels(self.kind, str(failure.reason)).inc()
            rt.metrics.reconciles.labels(self.kind, "error").inc()
            if timer or failure.nudged:
                return  # the next tick, or the nudge, tries again
            if failure.temporary:
                delay = min(rt.config.retry_base_seconds * 2**retry, rt.config.retry_max_seconds)
                raise kopf.TemporaryError(failure.message, delay=delay) from None
            raise kopf.PermanentError(failure.message) from None
        finally:
            rt.metrics.latency.labels(self.kind).observe(time.perf_counter() - started)
        for key, value in fields.items():
            patch.status[key] = value
        patch.status["observedGeneration"] = generation
        self._report(rt, body, patch, "True", Reason.RECONCILED, message, generation)
        rt.metrics.reconciles.labels(self.kind, "ok").inc()

    async def finalize(
        self, memo: kopf.Memo, body: kopf.Body, patch: kopf.Patch, retry: int, remove: Remove
    ) -> None:
        """Remove or release the core objects before Kopf drops the finalizer.

        While the core is away the finalizer stays (retried with backoff). A refusal that retrying
        cannot fix (the object is no longer this resource's) is reported and the resource goes.
        """
        rt: Runtime = memo["runtime"]
        generation = body.metadata.get("generation")
        try:
            async with rt.locks[body.metadata.uid or ""], rt.slots:
                message = await remove(rt, body)
        except Exception as exc:
            failure = classify(exc)
            self._report(rt, body, patch, "False", failure.reason, failure.message, generation)
            rt.metrics.errors.labels(self.kind, str(failure.reason)).inc()
            if failure.temporary:
                delay = min(rt.config.retry_base_seconds * 2**retry, rt.config.retry_max_seconds)
                raise kopf.TemporaryError(failure.message, delay=delay) from None
            return
        finally:
            rt.locks.pop(body.metadata.uid or "", None)
        self._report(rt, body, patch, "False", Reason.DELETING, message, generation)
        rt.metrics.reconciles.labels(self.kind, "deleted").inc()

    def _report(
        self,
        rt: Runtime,
        body: kopf.Body,
        patch: kopf.Patch,
        status: str,
        reason: Reason,
        message: str,
        generation: int | None,
    ) -> None:
        before = _previous_ready(body.status)
        conditions = [
            c
            for c in body.status.get("conditions") or []
            if isinstance(c, Mapping) and c.get("type") != READY
        ]
        ready = ready_condition(body.status.get("conditions"), status, reason, message, generation)
        patch.status["conditions"] = [*conditions, ready]
        if before != (status, str(reason)):  # an Event per transition, not per timer tick
            # kopf.event: posted whatever `settings.posting.level` filters out of Kopf's own logs.
            kind = "Normal" if status == "True" else "Warning"
            kopf.event(body, type=kind, reason=str(reason), message=message[:1024])
