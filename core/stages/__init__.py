"""Stage kinds, one module each, registered by `kind` (the API path `/api/v3/stages/<kind>/`).

The flow executor looks stages up here; the admin API validates each kind's settings with its
`Config` model.
"""

from __future__ import annotations

from tessera.core.stages import (
    base,
    consent,
    email,
    identification,
    initial_setup,
    invitation,
    password,
    prompt,
    simple,
    user_login,
    user_write,
)

KINDS: dict[str, type[base.Stage]] = {
    kind.kind: kind
    for kind in (
        identification.Identification,
        password.Password,
        prompt.Prompt,
        email.EmailStage,
        consent.Consent,
        invitation.Invitation,
        simple.UserDelete,
        user_write.UserWrite,
        initial_setup.InitialSetup,
        user_login.UserLogin,
        simple.UserLogout,
        simple.Deny,
        simple.Dummy,
        simple.Redirect,
    )
}


def build(kind: str, config: dict[str, object]) -> base.Stage:
    """An instance of the stage kind `kind` with its stored settings."""
    stage_class = KINDS[kind]
    return stage_class(stage_class.Config.model_validate(config))


__all__ = ["KINDS", "base", "build"]
