"""Contract cases for `flows/` and `stages/`: flows, their stage bindings, every stage kind and
invitations. Settings that name flows, stages and groups name objects made for the case."""

from __future__ import annotations

import uuid
from typing import Any

from akcontract import Body, Case, Setup


async def _flow(setup: Setup, designation: str = "stage_configuration") -> dict[str, Any]:
    slug = f"{designation.replace('_', '-')}-{setup.suffix}"
    return await setup.make(
        "flows/instances",
        {"name": slug, "slug": slug, "title": slug, "designation": designation},
    )


async def _flow_body(setup: Setup) -> dict[str, Any]:
    return {
        "name": "Contract login",
        "slug": f"contract-login-{setup.suffix}",
        "title": "Sign in",
        "designation": "authentication",
        "policy_engine_mode": "all",
        "compatibility_mode": True,
        "layout": "sidebar_left",
        "denied_action": "continue",
        "authentication": "require_unauthenticated",
    }


async def _binding(setup: Setup) -> dict[str, Any]:
    flow = await _flow(setup, "authentication")
    stage = await setup.make("stages/dummy", {"name": f"dummy-{setup.suffix}"})
    return {
        "target": flow["pk"],
        "stage": stage["pk"],
        "order": 10,
        "evaluate_on_plan": True,
        "re_evaluate_policies": False,
        "invalid_response_action": "restart_with_context",
        "policy_engine_mode": "all",
    }


async def _any_stage(setup: Setup) -> uuid.UUID:
    """`/stages/all/` has no create: a stage made over the raw API, bound to a flow."""
    stage = await setup.make("stages/deny", {"name": f"deny-any-{setup.suffix}"})
    flow = await _flow(setup)
    await setup.make("flows/bindings", {"target": flow["pk"], "stage": stage["pk"], "order": 0})
    return uuid.UUID(stage["pk"])


def _stage(path: str, settings: Body | dict[str, Any]) -> Body:
    """A create body for a stage kind: a unique name and `settings` (or what they make)."""

    async def body(setup: Setup) -> dict[str, Any]:
        found = await settings(setup) if callable(settings) else dict(settings)
        return {"name": f"{path.rsplit('/', 1)[-1]}-{setup.suffix}", **found}

    return body


async def _configure(setup: Setup) -> dict[str, Any]:
    return {"configure_flow": (await _flow(setup))["pk"], "friendly_name": "Key"}


async def _identification(setup: Setup) -> dict[str, Any]:
    webauthn = await setup.make("stages/authenticator/webauthn", {"name": f"pk-{setup.suffix}"})
    return {
        "user_fields": ["email"],
        "case_insensitive_matching": False,
        "show_matched_user": False,
        "pretend_user_exists": False,
        "enable_remember_me": True,
        "enrollment_flow": (await _flow(setup, "enrollment"))["pk"],
        "recovery_flow": (await _flow(setup, "recovery"))["pk"],
        "passwordless_flow": (await _flow(setup, "authentication"))["pk"],
        "webauthn_stage": webauthn["pk"],
        "sources": [],
        "show_source_labels": False,
    }


async def _validate(setup: Setup) -> dict[str, Any]:
    totp = await setup.make(
        "stages/authenticator/totp", {"name": f"totp-{setup.suffix}", "digits": "6"}
    )
    return {
        "not_configured_action": "configure",
        "device_classes": ["totp", "webauthn"],
        "configuration_stages": [totp["pk"]],
        "last_auth_threshold": "hours=1",
        "webauthn_user_verification": "required",
        "webauthn_hints": [],
        "webauthn_allowed_device_types": [],
    }


async def _password(setup: Setup) -> dict[str, Any]:
    return {
        "backends": ["authentik.core.auth.InbuiltBackend", "authentik.core.auth.TokenBackend"],
        "configure_flow": (await _flow(setup))["pk"],
        "failed_attempts_before_cancel": 3,
        "allow_show_password": True,
    }


async def _redirect(setup: Setup) -> dict[str, Any]:
    return {"mode": "flow", "target_flow": (await _flow(setup))["pk"], "keep_context": False}


async def _user_write(setup: Setup) -> dict[str, Any]:
    group = await setup.make("core/groups", {"name": f"new-users-{setup.suffix}"})
    return {
        "user_creation_mode": "always_create",
        "create_users_as_inactive": True,
        "create_users_group": group["pk"],
        "user_type": "internal",
        "user_path_template": "users/enrolled",
    }


async def _invitation(setup: Setup) -> dict[str, Any]:
    return {
        "name": f"invite-{setup.suffix}",
        "expires": "2030-01-01T00:00:00+00:00",
        "fixed_data": {"email": "new@example.com"},
        "single_use": True,
        "flow": (await _flow(setup, "enrollment"))["pk"],
    }


EMAIL = {
    "use_global_settings": False,
    "host": "mail.example.com",
    "port": 587,
    "username": "mailer",
    "use_tls": True,
    "use_ssl": False,
    "timeout": 20,
    "from_address": "accounts@example.com",
    "token_expiry": "hours=2",
    "subject": "Your link",
    "template": "email/account_confirmation.html",
    "activate_user_on_success": True,
    "recovery_max_attempts": 3,
    "recovery_cache_timeout": "minutes=30",
}


async def _static(setup: Setup) -> dict[str, Any]:
    return {**await _configure(setup), "token_count": 8, "token_length": 16}


async def _totp(setup: Setup) -> dict[str, Any]:
    return {**await _configure(setup), "digits": "8"}


async def _webauthn(setup: Setup) -> dict[str, Any]:
    return {
        **await _configure(setup),
        "user_verification": "required",
        "resident_key_requirement": "discouraged",
        "authenticator_attachment": "cross-platform",
        "hints": [],
        "device_type_restrictions": [],
        "max_attempts": 0,
    }


PROMPT = {
    "field_key": "nickname",
    "label": "Nickname",
    "type": "text",
    "required": False,
    "placeholder": "What friends call you",
    "initial_value": "return user.username",
    "order": 3,
    "sub_text": "Shown on your profile",
    "placeholder_expression": False,
    "initial_value_expression": True,
}


async def _prompt(setup: Setup) -> dict[str, Any]:
    return {"name": f"nickname-{setup.suffix}", **PROMPT}


async def _prompt_stage(setup: Setup) -> dict[str, Any]:
    first = await setup.make("stages/prompt/prompts", {**PROMPT, "name": f"a-{setup.suffix}"})
    second = await setup.make(
        "stages/prompt/prompts",
        {
            "name": f"b-{setup.suffix}",
            "field_key": "team",
            "label": "Team",
            "type": "dropdown",
            "placeholder": "return ['red', 'blue']",
            "placeholder_expression": True,
        },
    )
    policy = await setup.make("policies/dummy", {"name": f"check-{setup.suffix}", "result": True})
    return {"fields": [first["pk"], second["pk"]], "validation_policies": [policy["pk"]]}


CASES = [
    Case(
        "flows/instances",
        _flow_body,
        change={"title": "Log in"},
        patch={"layout": "stacked"},
        lookup="slug",
    ),
    Case(
        "flows/bindings",
        _binding,
        change={"order": 20},
        patch={"invalid_response_action": "retry"},
    ),
    Case("stages/all", existing=_any_stage),
    Case(
        "stages/authenticator/static",
        _stage("stages/authenticator/static", _static),
        change={"token_count": 10},
        patch={"friendly_name": "Recovery codes"},
    ),
    Case(
        "stages/authenticator/totp",
        _stage("stages/authenticator/totp", _totp),
        change={"digits": "6"},
        patch={"friendly_name": "Phone"},
    ),
    Case(
        "stages/authenticator/validate",
        _stage("stages/authenticator/validate", _validate),
        change={"not_configured_action": "deny"},
        patch={"last_auth_threshold": "minutes=5"},
    ),
    Case(
        "stages/authenticator/webauthn",
        _stage("stages/authenticator/webauthn", _webauthn),
        change={"user_verification": "preferred"},
        patch={"authenticator_attachment": "platform"},
    ),
    Case(
        "stages/consent",
        _stage("stages/consent", {"mode": "expiring", "consent_expire_in": "days=7"}),
        change={"mode": "permanent"},
        patch={"consent_expire_in": "weeks=2"},
    ),
    Case(
        "stages/deny",
        _stage("stages/deny", {"deny_message": "Not here."}),
        change={"deny_message": "Nope."},
        patch={"deny_message": "Still no."},
    ),
    Case(
        "stages/dummy",
        _stage("stages/dummy", {"throw_error": False}),
        change={"name": "dummy-renamed"},
        patch={"throw_error": False},
    ),
    Case(
        "stages/email",
        _stage("stages/email", EMAIL),
        change={"use_global_settings": True, "token_expiry": "minutes=45"},
        patch={"subject": "Confirm your address"},
        write_only=frozenset({"password"}),
    ),
    Case(
        "stages/identification",
        _stage("stages/identification", _identification),
        change={"user_fields": ["username", "email"]},
        patch={"pretend_user_exists": True},
    ),
    Case(
        "stages/invitation/invitations",
        _invitation,
        change={"single_use": False},
        patch={"fixed_data": {"name": "New"}},
    ),
    Case(
        "stages/invitation/stages",
        _stage("stages/invitation/stages", {"continue_flow_without_invitation": True}),
        change={"continue_flow_without_invitation": False},
        patch={"continue_flow_without_invitation": True},
    ),
    Case(
        "stages/password",
        _stage("stages/password", _password),
        change={"backends": ["authentik.core.auth.InbuiltBackend"]},
        patch={"allow_show_password": False},
    ),
    Case(
        "stages/prompt/prompts",
        _prompt,
        change={"label": "Alias", "type": "date-time"},
        patch={"required": True, "type": "ak-locale"},
    ),
    Case(
        "stages/prompt/stages",
        _stage("stages/prompt/stages", _prompt_stage),
        change={"validation_policies": []},
        patch={"name": "prompt-patched"},
    ),
    Case(
        "stages/redirect",
        _stage("stages/redirect", _redirect),
        change={"mode": "static", "target_static": "https://example.com/next"},
        patch={"keep_context": False},
    ),
    Case(
        "stages/user_delete",
        _stage("stages/user_delete", {}),
        change={"name": "user-delete-renamed"},
        patch={"name": "user-delete-patched"},
    ),
    Case(
        "stages/user_login",
        _stage(
            "stages/user_login",
            {
                "session_duration": "hours=8",
                "terminate_other_sessions": True,
                "remember_me_offset": "days=7",
                "network_binding": "no_binding",
                "geoip_binding": "no_binding",
            },
        ),
        change={"session_duration": "hours=12"},
        patch={"terminate_other_sessions": False},
    ),
    Case(
        "stages/user_logout",
        _stage("stages/user_logout", {}),
        change={"name": "user-logout-renamed"},
        patch={"name": "user-logout-patched"},
    ),
    Case(
        "stages/user_write",
        _stage("stages/user_write", _user_write),
        change={"user_type": "external"},
        patch={"create_users_as_inactive": False},
    ),
]
