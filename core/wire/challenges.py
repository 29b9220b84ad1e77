"""Wire models of the flow executor's challenges (`/api/v3/flows/executor/<slug>/`).

Every reply of the executor is one of these, picked by its `component`, with authentik's names
and shapes (its `ChallengeTypes`): the stage's own fields, `flow_info`, `response_errors`, and
for the challenges that show who is logging in (`WithUserInfo`) `pending_user` and
`pending_user_avatar`, which authentik requires and never sends as null. The executor passes
every body through `render`, so a reply that is not one of these shapes fails in the test suite
rather than in a client; the OpenAPI document lists them (`CHALLENGES`) under the discriminator
`component`.

Fields authentik declares and Tessera has no use for (captcha, sources, application
pre-launch) are declared too, so that the document is authentik's; `render` sends only what a
stage set, as Django REST Framework leaves out fields that were not given.

Called by the flow executor (`flows.executor`) and the OpenAPI document (`api.flows`).
"""

from __future__ import annotations

import datetime as dt
import typing
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field

from tessera.core.wire.common import IsoDateTime, Request, Response, Uuid, check_json_object
from tessera.core.wire.flows import Designation, Layout, PromptType, ThemedUrls
from tessera.core.wire.saml import SAMLBinding

# The classes of devices authentik's validate stage may list (Tessera has the first three).
DeviceClass = Literal["static", "totp", "webauthn", "duo", "sms", "email"]


class FieldErrorDetail(Response):
    """One message about one field of an answer (authentik's `ErrorDetail`; Tessera's own
    `ErrorDetail` is the API's `{"detail": ...}`)."""

    string: str
    code: str


class ContextualFlowInfo(Response):
    title: str | None = None
    background: str | None = None
    background_themed_urls: ThemedUrls | None = None
    cancel_url: str
    layout: Layout


class Challenge(Response):
    """What every challenge carries; `component` names the subclass."""

    model_config = ConfigDict(extra="forbid")

    flow_info: ContextualFlowInfo | None = None
    component: str
    response_errors: dict[str, list[FieldErrorDetail]] | None = None


class WithUserInfo(Challenge):
    """A challenge that shows who is logging in: `pending_user` is the identifier they typed
    (or the user's username, or "" when nobody is known yet)."""

    pending_user: str
    pending_user_avatar: str


class RedirectChallenge(Challenge):
    component: Literal["xak-flow-redirect"]
    to: str
    final_redirect: bool = False


class AccessDeniedChallenge(WithUserInfo):
    component: Literal["ak-stage-access-denied"]
    error_message: str | None = None


class FlowErrorChallenge(Challenge):
    component: Literal["ak-stage-flow-error"]
    request_id: str
    error: str | None = None
    traceback: str | None = None


class CaptchaChallenge(WithUserInfo):
    """authentik's captcha stage (declared for `IdentificationChallenge.captcha_stage`; Tessera
    has no captcha)."""

    component: Literal["ak-stage-captcha"]
    site_key: str
    js_url: str
    interactive: bool


class LoginSource(Response):
    """A source to log in with, shown on the identification page (Tessera's list is empty)."""

    name: str
    icon_url: str | None = None
    promoted: bool = False
    challenge: RedirectChallenge


class IdentificationChallenge(Challenge):
    component: Literal["ak-stage-identification"]
    user_fields: list[str] | None
    pending_user_identifier: str | None = None
    password_fields: bool
    allow_show_password: bool = False
    application_pre: str | None = None
    application_pre_launch: str | None = None
    flow_designation: Designation
    captcha_stage: CaptchaChallenge | None = None
    enroll_url: str | None = None
    recovery_url: str | None = None
    passwordless_url: str | None = None
    primary_action: str
    sources: list[LoginSource] | None = None
    show_source_labels: bool
    enable_remember_me: bool = True
    passkey_challenge: dict[str, Any] | None = None


class PasswordChallenge(WithUserInfo):
    component: Literal["ak-stage-password"]
    recovery_url: str | None = None
    allow_show_password: bool = False


class DeviceChallenge(Response):
    device_class: DeviceClass
    device_uid: str
    challenge: dict[str, Any]
    last_used: dt.datetime | None


def _small_object(value: dict[str, Any]) -> dict[str, Any]:
    return check_json_object(value, 16 * 1024)


class DeviceChallengeRequest(Request):
    """The device a client picked on the validate stage (`selected_challenge`): one of the
    challenge's `device_challenges`, sent back as it came."""

    device_class: DeviceClass
    device_uid: Annotated[str, Field(max_length=64)] = ""
    challenge: Annotated[dict[str, Any], AfterValidator(_small_object)] = Field(
        default_factory=dict
    )
    last_used: IsoDateTime | None = None


class SelectableStage(Response):
    pk: Uuid
    name: str
    verbose_name: str
    meta_model_name: str


class AuthenticatorValidationChallenge(WithUserInfo):
    component: Literal["ak-stage-authenticator-validate"]
    device_challenges: list[DeviceChallenge]
    configuration_stages: list[SelectableStage]


class AuthenticatorTOTPChallenge(WithUserInfo):
    component: Literal["ak-stage-authenticator-totp"]
    config_url: str


class AuthenticatorStaticChallenge(WithUserInfo):
    component: Literal["ak-stage-authenticator-static"]
    codes: list[str]


class AuthenticatorWebAuthnChallenge(WithUserInfo):
    component: Literal["ak-stage-authenticator-webauthn"]
    registration: dict[str, Any]


class PromptChoice(Response):
    value: str
    label: str


class StagePrompt(Response):
    field_key: str
    label: str
    type: PromptType
    required: bool
    placeholder: str
    initial_value: str
    order: int
    sub_text: str
    choices: list[PromptChoice] | None


class PromptChallenge(Challenge):
    component: Literal["ak-stage-prompt"]
    fields: list[StagePrompt]


class EmailChallenge(Challenge):
    component: Literal["ak-stage-email"]


class ConsentPermission(Response):
    name: str
    id: str


class ConsentChallenge(WithUserInfo):
    component: Literal["ak-stage-consent"]
    header_text: str | None = None
    permissions: list[ConsentPermission]
    additional_permissions: list[ConsentPermission]
    token: str


class UserLoginChallenge(WithUserInfo):
    component: Literal["ak-stage-user-login"]


class DummyChallenge(Challenge):
    component: Literal["ak-stage-dummy"]
    name: str


class LogoutURL(Response):
    """One service provider to tell of a logout in a hidden frame: the URL to load (the
    HTTP-Redirect binding, the message in its query), or to post `saml_request` to."""

    url: str
    provider_name: str | None = None
    binding: str | None = None
    saml_request: str | None = None
    saml_response: str | None = None
    saml_relay_state: str | None = None


class IframeLogoutChallenge(Challenge):
    """Front-channel logout in hidden frames, all at once; the page answers when they loaded."""

    component: Literal["ak-provider-iframe-logout"]
    logout_urls: list[LogoutURL] = Field(default_factory=list)


class NativeLogoutChallenge(Challenge):
    """Front-channel logout by the browser itself: to one service provider (redirect to
    `redirect_url`, or post `saml_request` to `post_url`), which sends it back to the flow."""

    component: Literal["ak-provider-saml-native-logout"]
    provider_name: str | None = None
    is_complete: bool = False
    post_url: str | None = None
    redirect_url: str | None = None
    saml_binding: SAMLBinding | None = None
    saml_request: str | None = None
    saml_response: str | None = None
    saml_relay_state: str | None = None


# Every challenge the executor answers with.
CHALLENGES: tuple[type[Challenge], ...] = (
    AccessDeniedChallenge,
    AuthenticatorStaticChallenge,
    AuthenticatorTOTPChallenge,
    AuthenticatorValidationChallenge,
    AuthenticatorWebAuthnChallenge,
    ConsentChallenge,
    DummyChallenge,
    EmailChallenge,
    FlowErrorChallenge,
    IdentificationChallenge,
    IframeLogoutChallenge,
    NativeLogoutChallenge,
    PasswordChallenge,
    PromptChallenge,
    RedirectChallenge,
    UserLoginChallenge,
)


def component_of(model: type[Challenge]) -> str:
    """The `component` a challenge model stands for."""
    (value,) = typing.get_args(model.model_fields["component"].annotation)
    return str(value)


BY_COMPONENT: dict[str, type[Challenge]] = {component_of(m): m for m in CHALLENGES}


def render(body: dict[str, Any]) -> dict[str, Any]:
    """`body` checked against its component's model and turned into JSON-ready values: the
    fields the stage set, nothing else (a field left unset is left out, as in authentik). An
    unknown component or a wrong shape raises `ValueError` (a `pydantic.ValidationError`)."""
    model = BY_COMPONENT.get(str(body.get("component")))
    if model is None:
        raise ValueError(f"{body.get('component')!r} is not a challenge of authentik's")
    return model.model_validate(body).model_dump(mode="json", exclude_unset=True)


def is_with_user_info(component: str) -> bool:
    """Whether the challenge of `component` shows who is logging in."""
    model = BY_COMPONENT.get(component)
    return model is not None and issubclass(model, WithUserInfo)
