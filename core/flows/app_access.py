"""Which applications a user may open: each application's policy bindings, evaluated for that
user in the application's engine mode (no enabled binding: open to every user, as in authentik).

The one place that decides it for listings: the portal's application tiles (`web`), and
`GET /api/v3/core/applications/` with its `check_access` action (`api`). Reads the bindings,
policies and group tree from the in-process definitions snapshot and the user's groups once per
call, then runs the policy engine per application outside any transaction; results of cacheable
policies come from the policy result cache (`engine`), so a listing costs one read.
"""

from __future__ import annotations

from typing import Any

from tessera.core.flows import definitions
from tessera.core.policies import engine
from tessera.core.stages import base


async def verdicts(
    services: base.Services,
    snapshot: definitions.Snapshot,
    apps: list[dict[str, Any]],
    user: dict[str, Any],
    client_ip: str,
    *,
    use_cache: bool = True,
) -> list[engine.Result]:
    """The engine's result for `user` on each of `apps`, in order. `use_cache=False` evaluates
    afresh (an administrator's access check), as authentik's `check_access` does."""
    groups: list[str] | None = None
    results = []
    for app in apps:
        if not snapshot.policy_bindings.get(app["pk"]):
            results.append(engine.Result(True))
            continue
        if groups is None:
            groups = await definitions.member_of(services.store, user)
        request = engine.Request(
            user=user,
            client_ip=client_ip,
            cache=services.cache,
            result_ttl=services.settings.cache.timeout_policies if use_cache else 0,
        )
        loaded = snapshot.loaded(app["pk"], groups)
        results.append(
            await engine.decide(loaded, app["policy_engine_mode"], request, services.store)
        )
    return results


def opens(result: engine.Result) -> bool:
    """Whether a result lets the user open the application. # SECURITY: a binding that failed
    to evaluate (and whose failure_result does not pass) denies, even in `any` mode."""
    return result.passing and not result.error


async def allowed(
    services: base.Services,
    snapshot: definitions.Snapshot,
    apps: list[dict[str, Any]],
    user: dict[str, Any],
    client_ip: str,
) -> list[dict[str, Any]]:
    """The applications of `apps` that `user` may open, in the same order."""
    results = await verdicts(services, snapshot, apps, user, client_ip)
    return [app for app, result in zip(apps, results, strict=True) if opens(result)]
