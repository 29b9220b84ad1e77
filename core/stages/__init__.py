"""Stage kinds, one module each, registered by `kind` (the API path `/api/v3/stages/<kind>/`).

The flow executor looks stages up here; the admin API validates each kind's settings with its
`Config` model.
"""

from __future__ import annotations

import pydantic

from tessera.core import errors
from tessera.core.stages import (
    authenticator_static,
    authenticator_totp,
    authenticator_validate,
    authenticator_webauthn,
    base,
    consent,
    email,
    identification,
    initial_setup,
    invitation,
    password,
    prompt,
    provider_logout,
    simple,
    user_login,
    user_write,
)

KINDS: dict[str, type[base.Stage]] = {
    kind.kind: kind
    for kind in (
        identification.Identification,
        password.Password,
        authenticator_totp.AuthenticatorTotp,
        authenticator_static.AuthenticatorStatic,
        authenticator_validate.AuthenticatorValidate,
        authenticator_webauthn.AuthenticatorWebAuthn,
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
# Stages no flow binds, which the layers above insert into a running plan by kind
# (`FlowState.insert_provided`): the providers' front-channel logout steps.
PROVIDED: dict[str, type[base.Stage]] = {kind.kind: kind for kind in provider_logout.KINDS}


def build(kind: str, config: dict[str, object]) -> base.Stage:
    """An instance of the stage kind `kind` with its stored settings."""
    stage_class = KINDS.get(kind)
    if stage_class is None:
        raise StageError(f"unknown stage kind {kind!r}")
    try:
        return stage_class(stage_class.Config.model_validate(config))
    except pydantic.ValidationError as exc:
        raise StageError(f"stage settings are invalid: {exc.errors()[0]['msg']}") from None


class StageError(errors.TesseraError):
    """A stored stage cannot be used (unknown kind or invalid settings)."""


__all__ = ["KINDS", "PROVIDED", "StageError", "base", "build", "provider_logout"]
