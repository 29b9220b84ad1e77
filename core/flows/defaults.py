"""The default flows created on first start, under authentik's slugs.

Created when absent and never overwritten (admins may change them), inside the bootstrap lock.
"""

from __future__ import annotations

from typing import Any

from tessera.core import stages, store, wire
from tessera.core.identity import util
from tessera.core.store import crud

MANAGED = "goauthentik.io/flows/"


def _settings_fields() -> list[dict[str, Any]]:
    """default-user-settings-flow's form: username, name and email, filled in with the user's own
    values (initial-value expressions, as authentik's default does)."""
    return [
        {
            "field_key": key,
            "label": label,
            "type": kind,
            "required": required,
            "initial_value": f"return user.{key}",
            "initial_value_expression": True,
            "order": order,
        }
        for order, (key, label, kind, required) in enumerate(
            [
                ("username", "Username", "text", True),
                ("name", "Name", "text", False),
                ("email", "Email", "email", True),
            ]
        )
    ]


# slug -> (name, title, designation, authentication, [(stage name, kind, config), ...])
DEFAULTS: dict[str, tuple[str, str, str, str, list[tuple[str, str, dict[str, Any]]]]] = {
    "default-authentication-flow": (
        "Welcome to authentik!",
        "Welcome to authentik!",
        "authentication",
        "none",
        [
            (
                "default-authentication-identification",
                "identification",
                {"recovery_flow": "default-recovery-flow"},
            ),
            (
                "default-authentication-password",
                "password",
                {
                    "configure_flow": "default-password-change",
                    # Local passwords, then the directory an LDAP source brought the user from
                    # (so synced users log in as soon as a sync ran). authentik's default also
                    # takes app passwords here (TokenBackend); Tessera leaves that to be chosen.
                    "backends": [
                        "authentik.core.auth.InbuiltBackend",
                        "authentik.sources.ldap.auth.LDAPBackend",
                    ],
                },
            ),
            (
                "default-authentication-mfa-validation",
                "authenticator_validate",
                {"device_classes": ["totp", "static", "webauthn"], "not_configured_action": "skip"},
            ),
            ("default-authentication-login", "user_login", {}),
        ],
    ),
    "default-authenticator-totp-setup": (
        "default-authenticator-totp-setup",
        "Set up Two-Factor authentication",
        "stage_configuration",
        "require_authenticated",
        [
            (
                "default-authenticator-totp-setup",
                "authenticator_totp",
                {"digits": 6, "configure_flow": "default-authenticator-totp-setup"},
            )
        ],
    ),
    "default-authenticator-static-setup": (
        "default-authenticator-static-setup",
        "Set up Static OTP Tokens",
        "stage_configuration",
        "require_authenticated",
        [
            (
                "default-authenticator-static-setup",
                "authenticator_static",
                {
                    "token_count": 6,
                    "token_length": 12,
                    "configure_flow": "default-authenticator-static-setup",
                },
            )
        ],
    ),
    "default-authenticator-webauthn-setup": (
        "default-authenticator-webauthn-setup",
        "Set up WebAuthn",
        "stage_configuration",
        "require_authenticated",
        [
            (
                "default-authenticator-webauthn-setup",
                "authenticator_webauthn",
                {"configure_flow": "default-authenticator-webauthn-setup"},
            )
        ],
    ),
    "initial-setup": (
        "Initial setup",
        "Welcome to authentik!",
        "stage_configuration",
        "none",
        [
            ("initial-setup-admin", "initial_setup", {}),
            (
                "initial-setup-prompt",
                "prompt",
                {
                    "fields": [
                        {"field_key": "email", "label": "Email", "type": "email", "order": 0},
                        {
                            "field_key": "password",
                            "label": "Password",
                            "type": "password",
                            "order": 1,
                        },
                        {
                            "field_key": "password_repeat",
                            "label": "Password (repeat)",
                            "type": "password",
                            "order": 2,
                        },
                    ]
                },
            ),
            ("initial-setup-write", "user_write", {"user_creation_mode": "never_create"}),
            ("initial-setup-login", "user_login", {}),
        ],
    ),
    "default-recovery-flow": (
        "Default recovery flow",
        "Reset your password",
        "recovery",
        "require_unauthenticated",
        [
            ("default-recovery-identification", "identification", {}),
            ("default-recovery-email", "email", {"subject": "Password reset"}),
            (
                "default-recovery-field-password",
                "prompt",
                {
                    "fields": [
                        {"field_key": "password", "label": "New password", "type": "password"},
                        {
                            "field_key": "password_repeat",
                            "label": "New password (repeat)",
                            "type": "password",
                            "order": 1,
                        },
                    ]
                },
            ),
            ("default-recovery-user-write", "user_write", {"user_creation_mode": "never_create"}),
            ("default-recovery-user-login", "user_login", {}),
        ],
    ),
    "default-enrollment-flow": (
        "Default enrollment flow",
        "Create your account",
        "enrollment",
        "require_unauthenticated",
        [
            (
                "default-enrollment-prompt",
                "prompt",
                {
                    "fields": [
                        {"field_key": "username", "label": "Username", "type": "username"},
                        {"field_key": "name", "label": "Name", "type": "text", "order": 1},
                        {"field_key": "email", "label": "Email", "type": "email", "order": 2},
                        {
                            "field_key": "password",
                            "label": "Password",
                            "type": "password",
                            "order": 3,
                        },
                        {
                            "field_key": "password_repeat",
                            "label": "Password (repeat)",
                            "type": "password",
                            "order": 4,
                        },
                    ]
                },
            ),
            (
                "default-enrollment-user-write",
                "user_write",
                {"user_creation_mode": "always_create"},
            ),
            ("default-enrollment-user-login", "user_login", {}),
        ],
    ),
    "default-password-change": (
        "Change password",
        "Change password",
        "stage_configuration",
        "require_authenticated",
        [
            (
                "default-password-change-prompt",
                "prompt",
                {
                    "fields": [
                        {"field_key": "password", "label": "New password", "type": "password"},
                        {
                            "field_key": "password_repeat",
                            "label": "New password (repeat)",
                            "type": "password",
                            "order": 1,
                        },
                    ]
                },
            ),
            ("default-password-change-write", "user_write", {"user_creation_mode": "never_create"}),
        ],
    ),
    "default-user-settings-flow": (
        "User settings",
        "Update your info",
        "stage_configuration",
        "require_authenticated",
        [
            (
                "default-user-settings-prompt",
                "prompt",
                {"fields": _settings_fields()},
            ),
            ("default-user-settings-write", "user_write", {"user_creation_mode": "never_create"}),
        ],
    ),
    "default-provider-authorization-explicit-consent": (
        "Authorize Application",
        "Authorize application",
        "authorization",
        "require_authenticated",
        [("default-provider-authorization-consent", "consent", {"mode": "permanent"})],
    ),
    "default-provider-authorization-implicit-consent": (
        "Authorize Application",
        "Authorize application",
        "authorization",
        "require_authenticated",
        [],
    ),
    "default-invalidation-flow": (
        "Default Invalidation Flow",
        "Default Invalidation Flow",
        "invalidation",
        "none",
        [("default-invalidation-logout", "user_logout", {})],
    ),
}

# Bindings are ordered 10, 20, 30...; these take authentik's own order (its blueprints leave room
# before the login stage for stages that admins add).
ORDER = {"default-authentication-login": 100}


async def _prompts(tx: store.Tx, stage: str, fields: list[dict[str, Any]]) -> list[str]:
    """The prompt rows of a default prompt stage's fields (named `<stage>-<field key>`)."""
    pks = []
    for spec in fields:
        name = f"{stage}-{spec['field_key']}"
        row = await crud.find(tx, "prompts", name=name)
        if row is None:
            body = wire.flows.PromptRequest.model_validate({"name": name, **spec})
            row = await crud.insert(
                tx,
                "prompts",
                {**body.model_dump(), "pk": util.new_uuid(), "created": util.now()},
            )
        pks.append(str(row["pk"]))
    return pks


async def _stage(tx: store.Tx, name: str, kind: str, config: dict[str, Any]) -> str:
    row = await crud.find(tx, "stages", name=name)
    if row is None:
        if kind == "prompt":
            config = {**config, "fields": await _prompts(tx, name, config["fields"])}
        row = await crud.insert(
            tx,
            "stages",
            {
                "pk": util.new_uuid(),
                "name": name,
                "kind": kind,
                "config": config,
                "managed": MANAGED + name,
                "created": util.now(),
            },
        )
    return str(row["pk"])


async def ensure(tx: store.Tx) -> list[str]:
    """Create the default flows that do not exist yet; return the slugs created."""
    created = []
    for slug, (name, title, designation, authentication, steps) in DEFAULTS.items():
        if await crud.exists(tx, "flows", slug=slug):
            continue
        flow = await crud.insert(
            tx,
            "flows",
            {
                "pk": util.new_uuid(),
                "name": name,
                "slug": slug,
                "title": title,
                "designation": designation,
                "authentication": authentication,
                "managed": MANAGED + slug,
                "created": util.now(),
            },
        )
        for index, (stage_name, kind, config) in enumerate(steps, start=1):
            stage_pk = await _stage(tx, stage_name, kind, config)
            await crud.insert(
                tx,
                "flow_stage_bindings",
                {
                    "pk": util.new_uuid(),
                    "target": flow["pk"],
                    "stage": stage_pk,
                    "order": ORDER.get(stage_name, index * 10),
                },
            )
        if slug in DISABLED:
            await _disable(tx, flow["pk"], slug)
        created.append(slug)
    if created:
        await _flows_by_pk(tx)
    return created


async def _flows_by_pk(tx: store.Tx) -> None:
    """The defaults above name flows by slug; the default stages store their pks (a flow
    created later in `DEFAULTS` is found once all exist)."""
    pks = {f["slug"]: f["pk"] for f in await crud.find_many(tx, "flows", "slug", list(DEFAULTS))}
    for name, kind, _ in (step for *_, steps in DEFAULTS.values() for step in steps):
        row = await crud.find(tx, "stages", name=name)
        if row is None or row["managed"] != MANAGED + name:
            continue
        refs = wire.flows.references(stages.KINDS[kind].Config)
        named = [k for k, table in refs.items() if table == "flows"]
        found = {
            k: pks[v] for k in named if isinstance(v := row["config"].get(k), str) and v in pks
        }
        if found:
            await crud.update(tx, "stages", {"pk": row["pk"]}, {"config": row["config"] | found})


# Flows that exist but refuse everyone until an admin disables this binding (or deletes it).
DISABLED = {"default-enrollment-flow"}


async def _disable(tx: store.Tx, flow_pk: str, slug: str) -> None:
    name = f"{slug}-disabled"
    policy = await crud.find(tx, "policies", name=name) or await crud.insert(
        tx,
        "policies",
        {
            "pk": util.new_uuid(),
            "name": name,
            "kind": "dummy",
            "managed": MANAGED + name,
            "config": {"result": False},
            "created": util.now(),
        },
    )
    await crud.insert(
        tx,
        "policy_bindings",
        {"pk": util.new_uuid(), "target": flow_pk, "policy": policy["pk"], "order": 0},
    )
