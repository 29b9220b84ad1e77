"""Kopf handlers of the tessera.dev kinds: `registry(config)` builds them into a fresh registry.

`tessera.operator.main` (the `tessera operator` command) and the tests run Kopf with it. For each
kind: create, update and resume run the reconcile, a timer runs it again every
`config.resync_seconds` to correct drift in the core, and delete (behind the finalizer
`tessera.dev/finalizer`) removes or releases the core objects. An index of the Applications by
provider lets a provider's reconcile nudge the Applications waiting for it (`nudge`), and one of
the Outposts by provider (ProxyProvider, LDAPProvider) the Outposts depending on it
(`providerrefs`). Outposts
have one more timer, every `config.observe_seconds`, refreshing their status (ready replicas,
instances connected to the core). Startup opens the core and Kubernetes clients into
`memo["runtime"]`; cleanup closes them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import kopf

from tessera.operator import client, metrics, resources
from tessera.operator.handlers import (
    applications,
    kube,
    ldapproviders,
    nudge,
    outposts,
    providerrefs,
    providers,
    proxyproviders,
    runtime,
    samlproviders,
    secretrefs,
    spmetadata,
)
from tessera.operator.resources import application, common, outpost

FINALIZER = "tessera.dev/finalizer"
ANNOTATIONS_PREFIX = "operator.tessera.dev"


def _configure(settings: kopf.OperatorSettings, config: runtime.Config) -> None:
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=ANNOTATIONS_PREFIX
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATIONS_PREFIX, key="last-handled-configuration"
    )
    # Events: our own, one per Ready transition (`runtime`), and Kopf's warnings and errors; not
    # Kopf's INFO lines ("Handler 'reconcile' succeeded.", two per reconcile), which would double
    # the operator's writes to the API server.
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 30
    # Given namespace names, Kopf would list and watch the cluster's namespaces (and CRDs) to find
    # which exist; the chart grants neither in that mode. Watch exactly the names given instead.
    settings.scanning.disabled = bool(config.namespaces)


def registry(
    config: runtime.Config, meters: metrics.Metrics | None = None
) -> kopf.OperatorRegistry:
    """A registry with every handler of the operator, bound to `config`."""
    reg = kopf.OperatorRegistry()
    meters = meters or metrics.Metrics()
    secretrefs.register(reg)  # a changed clientSecretRef Secret reconciles its provider at once
    spmetadata.register(reg)  # so does a changed SP metadata ConfigMap its SAMLProvider

    @kopf.on.login(registry=reg)
    def login(settings: kopf.OperatorSettings, **_: Any) -> kopf.ConnectionInfo | None:
        """As kubectl: the pod's service account in a cluster, else the kubeconfig."""
        return kopf.login_with_service_account(settings=settings) or kopf.login_with_kubeconfig(
            settings=settings
        )

    @kopf.on.startup(registry=reg)
    async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        _configure(settings, config)
        core = client.CoreClient(config.core_url, config.token, timeout=config.core_timeout_seconds)
        await core.__aenter__()
        memo["runtime"] = runtime.Runtime(config, core, await kube.connect(), meters)

    @kopf.on.cleanup(registry=reg)
    async def stop(memo: kopf.Memo, **_: Any) -> None:
        rt: runtime.Runtime | None = memo.get("runtime")
        if rt is not None:
            rt.closing = True  # timers still running stop asking
            await rt.core.close()
            await rt.kube.close()

    @kopf.index(common.GROUP, common.VERSION, application.KIND.plural, id=nudge.INDEX, registry=reg)
    def applications_by_provider(
        namespace: str | None,
        name: str | None,
        spec: kopf.Spec,
        annotations: kopf.Annotations,
        status: kopf.Status,
        **_: Any,
    ) -> dict[nudge.Key, nudge.Entry]:
        return nudge.entry(namespace, name, spec, annotations, status)

    @kopf.index(
        common.GROUP, common.VERSION, outpost.KIND.plural, id=providerrefs.INDEX, registry=reg
    )
    def outposts_by_provider(
        namespace: str | None,
        name: str | None,
        spec: kopf.Spec,
        annotations: kopf.Annotations,
        **_: Any,
    ) -> dict[providerrefs.Key, providerrefs.Entry]:
        return providerrefs.entry(namespace, name, spec, annotations)

    async def announce(
        rt: runtime.Runtime, body: kopf.Body, fields: Mapping[str, Any], kwargs: Mapping[str, Any]
    ) -> None:
        await nudge.announce(rt, body, fields, kwargs[nudge.INDEX])

    async def announce_proxy(  # also for LDAPProviders: ldap Outposts serve them
        rt: runtime.Runtime, body: kopf.Body, fields: Mapping[str, Any], kwargs: Mapping[str, Any]
    ) -> None:
        await nudge.announce(rt, body, fields, kwargs[nudge.INDEX])
        await providerrefs.announce(rt, body, fields, kwargs[providerrefs.INDEX])

    reconcilers = (
        (runtime.Reconciler(providers.KIND, providers.reconcile, announce), providers.remove),
        (runtime.Reconciler(applications.KIND, applications.reconcile), applications.remove),
        (
            runtime.Reconciler(proxyproviders.KIND, proxyproviders.reconcile, announce_proxy),
            proxyproviders.remove,
        ),
        (runtime.Reconciler(outposts.KIND, outposts.reconcile), outposts.remove),
        (
            runtime.Reconciler(samlproviders.KIND, samlproviders.reconcile, announce),
            samlproviders.remove,
        ),
        (
            runtime.Reconciler(ldapproviders.KIND, ldapproviders.reconcile, announce_proxy),
            ldapproviders.remove,
        ),
    )
    for reconciler, remove in reconcilers:
        _register(reg, config, reconciler, remove)

    @kopf.timer(
        common.GROUP,
        common.VERSION,
        outpost.KIND.plural,
        registry=reg,
        id="observe",
        interval=config.observe_seconds,
        initial_delay=config.observe_seconds,
    )
    async def observe(memo: kopf.Memo, body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        """Refresh an Outpost's status: ready replicas, instances the core sees."""
        uid = body.status.get("outpostUID")
        rt: runtime.Runtime = memo["runtime"]
        if not uid or body.metadata.get("deletionTimestamp") or rt.closing:
            return
        fields = await outposts.observe(rt, body, str(uid))
        for key, value in fields.items():
            if body.status.get(key) != value:
                patch.status[key] = value

    return reg


def _register(
    reg: kopf.OperatorRegistry,
    config: runtime.Config,
    reconciler: runtime.Reconciler,
    remove: runtime.Remove,
) -> None:
    kind = next(k for k in resources.KINDS if k.kind == reconciler.kind)
    group, version, plural = common.GROUP, common.VERSION, kind.plural

    @kopf.on.resume(group, version, plural, id="reconcile", registry=reg)
    @kopf.on.create(group, version, plural, id="reconcile", registry=reg)
    @kopf.on.update(group, version, plural, id="reconcile", registry=reg)
    async def reconcile(
        memo: kopf.Memo, body: kopf.Body, patch: kopf.Patch, retry: int, **kwargs: Any
    ) -> None:
        await reconciler.run(memo, body, patch, retry, timer=False, kwargs=kwargs)

    @kopf.timer(
        group,
        version,
        plural,
        registry=reg,
        id="resync",
        interval=config.resync_seconds,
        initial_delay=config.resync_seconds,
    )
    async def resync(memo: kopf.Memo, body: kopf.Body, patch: kopf.Patch, **kwargs: Any) -> None:
        await reconciler.run(memo, body, patch, 0, timer=True, kwargs=kwargs)

    @kopf.on.delete(group, version, plural, id="release", registry=reg)
    async def release(
        memo: kopf.Memo, body: kopf.Body, patch: kopf.Patch, retry: int, **_: Any
    ) -> None:
        await reconciler.finalize(memo, body, patch, retry, remove)
