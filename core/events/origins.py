"""Where an event comes from, in authentik's words: a Tessera module as one of authentik's apps.

An event's `app` is the module that recorded it (`tessera.core.stages.password`), as authentik
records the calling module (`authentik.stages.password.stage`). authentik's event matcher policy
names apps by their label (`authentik.stages.password`, an enum of its schema); `label` gives the
app that does in authentik what the module does in Tessera, so a rule written for authentik
matches Tessera's events of the same origin.

Called by the event matcher policy (`policies.checks`); pure, no I/O.
"""

from __future__ import annotations

import typing

from tessera.core.wire import event_names

LABELS: frozenset[str] = frozenset(typing.get_args(event_names.EventApp))

# Tessera module (or package) -> authentik app label; the longest matching prefix wins.
ORIGINS: dict[str, str] = {
    "tessera.core.identity": "authentik.core",
    "tessera.core.app": "authentik.core",
    "tessera.core.flows": "authentik.flows",
    "tessera.core.stages": "authentik.flows",  # a stage module without an app of its own
    # A failed second factor and a cloned passkey: authentik's validate stage checks both.
    "tessera.core.stages.attempts": "authentik.stages.authenticator_validate",
    "tessera.core.stages.passkey": "authentik.stages.authenticator_validate",
    "tessera.core.stages.throttle": "authentik.stages.password",
    "tessera.core.stages.email_change": "authentik.stages.email",
    "tessera.core.policies": "authentik.policies",
    "tessera.core.policies.checks": "authentik.policies",
    # Changes made through the API and the portal: authentik's audit middleware (events app).
    "tessera.core.api": "authentik.events",
    "tessera.core.web": "authentik.events",
    "tessera.core.api.admin": "authentik.admin",
    "tessera.core.api.root": "authentik.recovery",  # logins with a recovery key
    "tessera.core.events": "authentik.events",
    "tessera.core.tasks": "authentik.tasks",
    "tessera.core.crypto": "authentik.crypto",
    "tessera.core.blueprints": "authentik.blueprints",
    "tessera.core.outpost_hub": "authentik.outposts",
}
# Packages whose modules are named after authentik's apps: `<package>.<name>` is `<app>.<name>`.
NAMED_ALIKE = {
    "tessera.core.stages.": "authentik.stages.",
    "tessera.core.policies.": "authentik.policies.",
    "tessera.core.providers.": "authentik.providers.",
    "tessera.core.sources.": "authentik.sources.",
}


def label(origin: str) -> str | None:
    """authentik's app label for an event recorded by `origin`; None when there is none.

    An origin in authentik's own words (an event of an imported log) is read as authentik reads
    it: the app it starts with."""
    if origin.startswith("authentik."):
        return _longest(origin, {app: app for app in LABELS})
    for package, app in NAMED_ALIKE.items():
        if origin.startswith(package):
            named = app + origin.removeprefix(package).split(".", 1)[0]
            if named in LABELS:
                return named
    return _longest(origin, ORIGINS)


def _longest(origin: str, table: dict[str, str]) -> str | None:
    found = [p for p in table if origin == p or origin.startswith(p + ".")]
    return table[max(found, key=len)] if found else None
