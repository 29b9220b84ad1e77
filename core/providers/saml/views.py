"""The SAML endpoints under `/application/saml/<slug>/` (authentik's URLs).

SSO: an AuthnRequest arrives by HTTP-Redirect or HTTP-POST (or none, IdP-initiated). It is read
through the hardened parser, its signature checked when the provider has a `verification_kp`
(the query signature of the Redirect binding, or an embedded one, whose signed element alone is
then used), its ACS URL compared with the provider's, its ID remembered so it cannot be replayed.
The request is kept server-side under a random key while the browser goes through login (when
needed), the application's policies and the provider's authorization flow; only then is a Response
built and posted to the provider's ACS URL by an autosubmitting form. Until the request is known
good, every error is a page here; nothing is ever sent to an address the request named.

SLO: a LogoutRequest (either binding, checked the same way) ends the browser's core session
(`sessions.end_digest`, which tells outposts), and a LogoutResponse goes to the provider's SLS URL.
When a session ends here, providers with back-channel logout get a LogoutRequest POSTed
server-side (`Notifier`).
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import secrets
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web
from lxml import etree

from tessera.core import crypto, events, wire
from tessera.core import web as pages
from tessera.core.api import flows as flows_api
from tessera.core.api import net
from tessera.core.crypto import xmldsig
from tessera.core.flows import executor
from tessera.core.identity import keypairs, sessions, util
from tessera.core.policies import engine
from tessera.core.providers.oauth2 import views as oauth2_views
from tessera.core.providers.oauth2.service import Service
from tessera.core.providers.saml import assertion, metadata, records
from tessera.core.providers.saml.xml import (
    AC_PASSWORD_PROTECTED,
    SAML,
    SAMLP,
    STATUS_INVALID_NAMEID_POLICY,
    STATUS_NO_PASSIVE,
    STATUS_SUCCESS,
    MessageError,
    b64decode,
    deflate,
    inflate,
    parse,
    q,
    text_of,
)
from tessera.core.store import crud

log = structlog.get_logger("tessera.core.providers.saml")

PENDING_TTL = 1800
# An AuthnRequest is accepted this long after its IssueInstant (and this far in the future, for
# clock skew); its ID is remembered for longer, so a replay within the window is always caught.
REQUEST_MAX_AGE = dt.timedelta(minutes=10)
REQUEST_MAX_SKEW = dt.timedelta(minutes=3)
REPLAY_TTL = 20 * 60
MAX_RELAY_STATE = 2000
MAX_ID = 256
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class Refused(Exception):
    """A request that gets an error page (4xx), never a SAML answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


# The provider -------------------------------------------------------------------------------


@dataclass
class Provider:
    pk: int
    row: dict[str, Any]
    app: dict[str, Any]
    slug: str
    issuer: str
    authorization_flow: str  # slug
    keys: assertion.Keys
    signing_key_pem: str | None
    urls: dict[str, str]
    mappings: dict[str, dict[str, Any]]  # the SAML property mappings it names, by pk


def _service(request: web.Request) -> Service:
    return request.app[oauth2_views.SERVICE]


def _base(request: web.Request) -> str:
    return net.public_base(request)


# Providers as loaded (keys unsealed, mappings read), by (base URL, slug), each with the
# `Store.config_generation` it was read at: any committed write to providers, applications, flows,
# key pairs or SAML mappings (here or, through the bus, in another replica) drops them.
LOADED = web.AppKey("saml_providers_loaded", dict[tuple[str, str], tuple[int, "Provider"]])
MAX_LOADED = 1000


async def load(request: web.Request, slug: str) -> Provider:
    service = _service(request)
    base_url = _base(request)
    generation = service.db.config_generation
    loaded = request.app[LOADED]
    memo = loaded.get((base_url, slug))
    if memo is not None and memo[0] == generation:
        return memo[1]
    provider = await load_provider(service, base_url, slug=slug)
    if len(loaded) >= MAX_LOADED:
        loaded.clear()
    loaded[(base_url, slug)] = (generation, provider)
    return provider


async def load_provider(
    service: Service, base_url: str, *, slug: str | None = None, pk: int | None = None
) -> Provider:
    """A SAML provider with its application and keys, by application slug or provider pk."""
    async with service.db.read() as tx:
        if slug is not None:
            app = await crud.find(tx, "applications", slug=slug)
        else:
            app = await crud.find(tx, "applications", provider=pk)
        base = (
            await crud.find(tx, "providers", pk=app["provider"])
            if app and app["provider"]
            else None
        )
        if app is None or base is None or base["component"] != records.KIND:
            raise Refused("There is no SAML application here.", 404)
        slug = str(app["slug"])
        row = await crud.get(tx, records.TABLE, pk=base["pk"])
        flow = await crud.find(tx, "flows", pk=row["authorization_flow"])
        wanted = list(row["property_mappings"])
        wanted += [row[f] for f in ("name_id_mapping", "authn_context_class_ref_mapping") if row[f]]
        mappings = (
            {m["pk"]: m for m in await crud.find_many(tx, records.MAPPINGS, "pk", wanted)}
            if wanted
            else {}
        )
        pairs = {
            k["pk"]: k
            for k in await crud.find_many(
                tx,
                "certificate_keypairs",
                "pk",
                [v for v in (row["signing_kp"], row["verification_kp"], row["encryption_kp"]) if v],
            )
        }
    keys = assertion.Keys()
    signing_pem = None
    signing = pairs.get(row["signing_kp"] or "")
    if signing is not None and signing["key_sealed"]:
        signing_pem = keypairs.private_key(service.keyring, signing)
        keys.signer = xmldsig.Signer(signing_pem, signing["certificate_data"])
    if row["encryption_kp"] in pairs:
        keys.encryption_cert = pairs[row["encryption_kp"]]["certificate_data"]
    if row["verification_kp"] in pairs:
        keys.verification_cert = pairs[row["verification_kp"]]["certificate_data"]
    return Provider(
        pk=base["pk"],
        row=row,
        app=app,
        slug=slug,
        issuer=records.issuer(row, base_url, slug),
        authorization_flow=flow["slug"] if flow else "",
        keys=keys,
        signing_key_pem=signing_pem,
        urls=records.urls(base_url, slug),
        mappings=mappings,
    )


# Pages --------------------------------------------------------------------------------------


def _page(request: web.Request, title: str, status: int = 200, **values: Any) -> web.Response:
    response = pages.render(request, "oauth2.html", status=status, title=title, **values)
    response.headers.update(_NO_STORE)
    return response


def error_page(request: web.Request, message: str, status: int = 400) -> web.Response:
    return _page(request, "Request refused", status=status, page="error", message=message)


def post_form(request: web.Request, action: str, fields: dict[str, str]) -> web.Response:
    return _page(
        request,
        "Continue",
        page="form_post",
        action=action,
        fields=sorted((k, v) for k, v in fields.items() if v),
    )


def _relay_state(value: str | None) -> str:
    """RelayState is opaque: carried back to the SP's own endpoint, never followed here."""
    if not value:
        return ""
    if len(value) > MAX_RELAY_STATE or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise Refused("The RelayState is too long or holds control characters.")
    return value


# Reading requests ---------------------------------------------------------------------------


@dataclass
class Incoming:
    """A SAML message as received: its verified (or, without verification_kp, only parsed)
    root element, its binding and its RelayState."""

    root: Any
    binding: str
    relay_state: str


def _single(values: list[str], name: str) -> str | None:
    if not values:
        return None
    if len(values) != 1:
        raise Refused(f"{name} was given more than once.")
    return values[0]


def _raw_query_parts(request: web.Request) -> dict[str, str]:
    """The query's parameters as sent (still URL-encoded): the Redirect binding signs those."""
    out: dict[str, str] = {}
    for part in request.rel_url.raw_query_string.split("&"):
        name, _, value = part.partition("=")
        if name in out:
            raise Refused(f"{name} was given more than once.")
        out[name] = value
    return out


async def read_message(request: web.Request, provider: Provider, kind: str) -> Incoming:
    """The `SAMLRequest` (or `SAMLResponse`) of either binding, signature checked when the
    provider requires one. `kind` is `SAMLRequest` or `SAMLResponse`."""
    if request.method == "GET":
        encoded = _single(request.query.getall(kind, []), kind)
        relay = _single(request.query.getall("RelayState", []), "RelayState")
        binding = "redirect"
    else:
        if request.content_type != "application/x-www-form-urlencoded":
            raise Refused("Send the SAML message as an HTML form (HTTP-POST binding).")
        if request.content_length is not None and request.content_length > 600 * 1024:
            raise Refused("The SAML message is too large.", 413)
        try:
            form = await request.post()
        except ValueError:
            raise Refused("Malformed form body.") from None
        values = [v for v in form.getall(kind, []) if isinstance(v, str)]
        encoded = _single(values, kind)
        relay_values = [v for v in form.getall("RelayState", []) if isinstance(v, str)]
        relay = _single(relay_values, "RelayState")
        binding = "post"
    if not encoded:
        raise Refused(f"No {kind} was sent.")
    try:
        data = b64decode(encoded)
        if binding == "redirect":
            data = inflate(data)
        root = parse(data)
    except MessageError as exc:
        raise Refused(f"The SAML message cannot be read: {exc}.") from None
    relay_state = _relay_state(relay)
    cert = provider.keys.verification_cert
    if cert is None:
        return Incoming(root, binding, relay_state)
    # SHA-1 only from a service provider the administrator set this provider to SHA-1 for.
    sha1 = bool(
        {provider.row["signature_algorithm"], provider.row["digest_algorithm"]}
        & xmldsig.SHA1_ALGORITHMS
    )
    # SECURITY: from here on only what a verifier vouches for is used.
    if binding == "redirect" and "Signature" in request.query:
        raw = _raw_query_parts(request)
        if "SigAlg" not in raw or kind not in raw:
            raise Refused("The request's signature is incomplete.", 403)
        sig_alg = urllib.parse.unquote_plus(raw["SigAlg"])
        try:
            _verify_query(request, raw, kind, sig_alg, cert, allow_sha1=sha1)
        except xmldsig.SignatureError as exc:
            raise Refused(f"The request's signature is not valid: {exc}.", 403) from None
        return Incoming(root, binding, relay_state)
    if root.find(f"{{{xmldsig.DS}}}Signature") is None and not root.findall(
        f".//{{{xmldsig.DS}}}Signature"
    ):
        raise Refused("This application must sign its requests.", 403)
    try:
        verified = xmldsig.verify(root, cert, allow_sha1=sha1)
    except xmldsig.SignatureError as exc:
        raise Refused(f"The request's signature is not valid: {exc}.", 403) from None
    if verified.tag != root.tag or verified.get("ID") != root.get("ID"):
        # The signature covers some other element than the message itself (signature wrapping).
        raise Refused("The signature does not cover this request.", 403)
    return Incoming(verified, binding, relay_state)


def _verify_query(
    request: web.Request,
    raw: dict[str, str],
    kind: str,
    sig_alg: str,
    cert: str,
    *,
    allow_sha1: bool = False,
) -> None:
    """The Redirect binding signs the query's parameters as encoded by the sender; senders
    differ in how they encode (python3-saml signs `quote_plus` of each value but sends some
    characters bare), so the sent encoding is tried first, then `quote_plus` of the decoded
    values (upper-case escapes, then lower-case as ADFS makes them). Each candidate is built from
    the same decoded values this handler goes on to use, so none lets a value through that the
    signature did not cover."""
    names = [kind, *(["RelayState"] if "RelayState" in raw else []), "SigAlg"]
    as_sent = "&".join(f"{name}={raw[name]}" for name in names)
    decoded = {name: request.query[name] for name in names}
    encoded = "&".join(f"{n}={urllib.parse.quote_plus(decoded[n])}" for n in names)
    lower = re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), encoded)
    error: xmldsig.SignatureError | None = None
    for candidate in dict.fromkeys([as_sent, encoded, lower]):
        try:
            xmldsig.verify_query(
                candidate.encode(), request.query["Signature"], sig_alg, cert, allow_sha1=allow_sha1
            )
            return
        except xmldsig.SignatureError as exc:
            error = exc
    assert error is not None
    raise error


def _instant(value: str | None) -> dt.datetime:
    if not value:
        raise Refused("The request has no IssueInstant.")
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Refused("The request's IssueInstant is not a time.") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when


def _check_common(root: Any, tag: str, provider: Provider) -> str:
    """Checks every request shares; its ID."""
    if root.tag != q(SAMLP, tag):
        raise Refused(f"The message is not a {tag}.")
    if root.get("Version") != "2.0":
        raise Refused("Only SAML 2.0 is spoken here.")
    request_id = root.get("ID") or ""
    if not request_id or len(request_id) > MAX_ID:
        raise Refused("The request has no usable ID.")
    when = _instant(root.get("IssueInstant"))
    now = util.now()
    if when < now - REQUEST_MAX_AGE or when > now + REQUEST_MAX_SKEW:
        raise Refused("The request is too old or from the future; check the clocks.")
    destination = root.get("Destination")
    if destination is not None and destination not in provider.urls.values():
        # A request meant for another endpoint or IdP is refused (the bindings' rule).
        raise Refused("The request is addressed to another endpoint.")
    return request_id


async def _remember(request: web.Request, provider: Provider, request_id: str, what: str) -> None:
    """# SECURITY: a request ID is accepted once (the cache is shared by every instance)."""
    key = f"saml:{what}:{provider.pk}:{crypto.secrets.sha256_hex(request_id)}"
    if not await _service(request).cache.add(key, 1, REPLAY_TTL):
        raise Refused("This request was already used.", 400)


@dataclass
class AuthnRequest:
    id: str
    name_id_format: str | None
    allow_create: bool
    force_authn: bool
    is_passive: bool
    issuer: str


def read_authn(root: Any, provider: Provider) -> AuthnRequest:
    request_id = _check_common(root, "AuthnRequest", provider)
    acs = root.get("AssertionConsumerServiceURL")
    if acs is not None and acs != provider.row["acs_url"]:
        raise Refused("The request's AssertionConsumerServiceURL is not this application's.")
    if root.get("AssertionConsumerServiceIndex") not in (None, "0", "1"):
        raise Refused("Only the application's one AssertionConsumerService is served.")
    binding = root.get("ProtocolBinding")
    if binding is not None and binding != "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST":
        raise Refused("Responses are sent with the HTTP-POST binding only.")
    policy = root.find(q(SAMLP, "NameIDPolicy"))
    fmt = policy.get("Format") if policy is not None else None
    allow = policy is not None and policy.get("AllowCreate") in ("true", "1")
    return AuthnRequest(
        id=request_id,
        name_id_format=fmt,
        allow_create=allow,
        force_authn=root.get("ForceAuthn") in ("true", "1"),
        is_passive=root.get("IsPassive") in ("true", "1"),
        issuer=text_of(root.find(q(SAML, "Issuer")))[:2000],
    )


# SSO ----------------------------------------------------------------------------------------


def _pending_key(key: str) -> str:
    return "saml:sso:" + crypto.secrets.sha256_hex(key[:128])


def _continue_path(slug: str, key: str) -> str:
    return f"/application/saml/{slug}/sso/continue/?" + urllib.parse.urlencode({"key": key})


async def sso(request: web.Request) -> web.StreamResponse:
    """SP-initiated SSO, either binding."""
    try:
        provider = await load(request, request.match_info["slug"])
        incoming = await read_message(request, provider, "SAMLRequest")
        authn = read_authn(incoming.root, provider)
        await _remember(request, provider, authn.id, "authn")
    except Refused as exc:
        return error_page(request, exc.message, exc.status)
    pending = {
        "provider": provider.pk,
        "request_id": authn.id,
        "relay_state": incoming.relay_state,
        "name_id_format": authn.name_id_format,
        "force_authn": authn.force_authn,
        "is_passive": authn.is_passive,
        "created": time.time(),
    }
    return await _begin(request, provider, pending)


async def sso_init(request: web.Request) -> web.StreamResponse:
    """IdP-initiated SSO: no request; the RelayState is the provider's default only (a
    RelayState from the link would let anyone pick where the SP sends the user)."""
    try:
        provider = await load(request, request.match_info["slug"])
    except Refused as exc:
        return error_page(request, exc.message, exc.status)
    pending = {
        "provider": provider.pk,
        "request_id": None,
        "relay_state": provider.row["default_relay_state"],
        "name_id_format": None,
        "force_authn": False,
        "is_passive": False,
        "created": time.time(),
    }
    return await _begin(request, provider, pending)


async def _begin(
    request: web.Request, provider: Provider, pending: dict[str, Any]
) -> web.StreamResponse:
    key = secrets.token_urlsafe(32)
    await _service(request).cache.set(_pending_key(key), pending, PENDING_TTL)
    return await _proceed(request, provider, key, pending)


async def sso_continue(request: web.Request) -> web.StreamResponse:
    key = request.query.get("key", "")
    try:
        provider = await load(request, request.match_info["slug"])
    except Refused as exc:
        return error_page(request, exc.message, exc.status)
    pending = await _service(request).cache.get(_pending_key(key))
    if not isinstance(pending, dict) or pending.get("provider") != provider.pk:
        return error_page(request, "This sign-in request has expired; start again.")
    return await _proceed(request, provider, key, pending)


async def _may_use(
    service: Service, app: dict[str, Any], user: dict[str, Any], client_ip: str
) -> bool:
    """The application's policy bindings for `user` (no bindings: allowed, as in authentik)."""
    snapshot = await service.definitions.get()
    loaded = await snapshot.policy_load(service.db, app["pk"], user)
    if not loaded.rows:
        return True
    result = await engine.decide(
        loaded,
        app["policy_engine_mode"],
        engine.Request(
            user=user,
            client_ip=client_ip,
            cache=service.cache,
            context={},
            result_ttl=service.settings.cache.timeout_policies,
        ),
        service.db,
    )
    return result.passing and not result.error


async def _session_row(service: Service, who: executor.Browser) -> dict[str, Any] | None:
    if who.user is None:
        return None
    async with service.db.read() as tx:
        return await crud.find(tx, sessions.TABLE, key_digest=sessions.digest(who.key))


async def _proceed(
    request: web.Request, provider: Provider, key: str, pending: dict[str, Any]
) -> web.StreamResponse:
    service = _service(request)
    who = await flows_api.browser(request)
    session = await _session_row(service, who)
    continue_path = _continue_path(provider.slug, key)
    login_needed = session is None
    if session is not None and pending["force_authn"]:
        login_needed = session["created"].timestamp() < pending["created"]
    if login_needed:
        if pending["is_passive"]:
            return _answer_failure(request, provider, pending, STATUS_NO_PASSIVE, "Login needed.")
        query = urllib.parse.urlencode({"next": continue_path})
        restart = "&restart=1" if session is not None else ""
        raise web.HTTPFound(f"/if/flow/{pages.AUTH_FLOW}/?{query}{restart}")
    assert who.user is not None and session is not None
    if not await _may_use(service, provider.app, who.user, who.client_ip):
        return error_page(request, "You are not allowed to use this application.", 403)
    if not provider.authorization_flow:
        return error_page(request, "This application has no authorization flow.", 403)
    if not pending.get("flow_started"):
        refused = await service.flows.start(
            provider.authorization_flow,
            who,
            context={"application": provider.app["pk"], "consent_permissions": []},
            next_path=continue_path,
            done_key=key,
        )
        if refused:
            return error_page(request, refused, 403)
        pending["flow_started"] = True
        await service.cache.set(_pending_key(key), pending, PENDING_TTL)
        reply = await service.flows.get(provider.authorization_flow, who, {})
        if reply.body.get("component") != executor.REDIRECT:
            if pending["is_passive"]:
                return _answer_failure(
                    request, provider, pending, STATUS_NO_PASSIVE, "Consent needed."
                )
            raise web.HTTPFound(f"/if/flow/{provider.authorization_flow}/")
    outcome = await service.flows.completed(who, key)
    if outcome is None:
        return error_page(request, "The authorization was not completed; start again.")
    if outcome.get("user") != who.user["pk"]:
        return error_page(request, "The authorization was completed by another user.", 403)
    await service.cache.delete(_pending_key(key))
    return await _respond(request, service, provider, who, session, pending)


def _answer_failure(
    request: web.Request,
    provider: Provider,
    pending: dict[str, Any],
    code: str,
    message: str,
) -> web.Response:
    document = assertion.failure(
        provider.row,
        provider.keys,
        provider.issuer,
        provider.row["acs_url"],
        pending["request_id"],
        code,
        message,
        util.now(),
    )
    return post_form(
        request,
        provider.row["acs_url"],
        {
            "SAMLResponse": base64.b64encode(document).decode(),
            "RelayState": pending["relay_state"],
        },
    )


def _name_id_format(provider: Provider, requested: str | None) -> str | None:
    """The NameID format of the answer: the SP's NameIDPolicy when it names a format served
    here, else the provider's default; None when it asks for one that is not served."""
    if requested in (None, "", wire.saml.NAMEID_UNSPECIFIED):
        return str(provider.row["default_name_id_policy"])
    if requested in wire.saml.NAMEID_FORMATS:
        return requested
    return None


async def _respond(
    request: web.Request,
    service: Service,
    provider: Provider,
    who: executor.Browser,
    session: dict[str, Any],
    pending: dict[str, Any],
) -> web.StreamResponse:
    assert who.user is not None
    fmt = _name_id_format(provider, pending["name_id_format"])
    if fmt is None:
        return _answer_failure(
            request, provider, pending, STATUS_INVALID_NAMEID_POLICY, "NameID format not served."
        )
    got = await service.subject_of(who.user)
    subject = assertion.Subject(got.user, got.groups, got.all_groups)
    mappings = provider.mappings
    context = {"application": {"slug": provider.slug, "name": provider.app["name"]}}
    attributes: list[tuple[str, str | None, list[str]]] = []
    for pk in provider.row["property_mappings"]:
        mapping = mappings.get(pk)
        if mapping is None:
            continue
        values = await assertion.evaluate(mapping, subject, context, who.client_ip)
        if values:
            attributes.append((mapping["saml_name"], mapping["friendly_name"], values))
    name_id = assertion.name_id(service.keyring, fmt, subject, session["key_digest"], provider.pk)
    if provider.row["name_id_mapping"] in mappings:
        values = await assertion.evaluate(
            mappings[provider.row["name_id_mapping"]], subject, context, who.client_ip
        )
        if values:
            name_id = values[0]
    authn_context = AC_PASSWORD_PROTECTED
    if provider.row["authn_context_class_ref_mapping"] in mappings:
        values = await assertion.evaluate(
            mappings[provider.row["authn_context_class_ref_mapping"]],
            subject,
            context,
            who.client_ip,
        )
        if values:
            authn_context = values[0]
    now = util.now()
    session_index = assertion.new_id()
    issue = assertion.Issue(
        issuer=provider.issuer,
        acs_url=provider.row["acs_url"],
        in_response_to=pending["request_id"],
        name_id=name_id,
        name_id_format=fmt,
        session_index=session_index,
        authn_instant=session["created"],
        authn_context=authn_context,
        attributes=attributes,
        now=now,
    )
    document = await crypto.work.run(assertion.success, provider.row, provider.keys, issue)
    retention = dt.timedelta(days=service.settings.events.retention_days)
    async with service.db.transaction() as tx:
        await crud.insert(
            tx,
            records.SESSIONS,
            {
                "session_index": session_index,
                "provider": provider.pk,
                "user_pk": who.user["pk"],
                "session_digest": session["key_digest"],
                "name_id": name_id,
                "name_id_format": fmt,
                # Kept while either the login session or the SP's session may still live.
                "expires": max(
                    session["expires"],
                    now + wire.saml.offset(provider.row["session_valid_not_on_or_after"]),
                ),
            },
        )
        await events.record(
            tx,
            "authorize_application",
            user=who.user,
            client_ip=who.client_ip,
            context={
                "authorized_application": {
                    "pk": provider.app["pk"],
                    "name": provider.app["name"],
                    "slug": provider.app["slug"],
                },
                "flow": provider.authorization_flow,
            },
            retention=retention,
            app="tessera.core.providers.saml",
        )
    return post_form(
        request,
        provider.row["acs_url"],
        {
            "SAMLResponse": base64.b64encode(document).decode(),
            "RelayState": pending["relay_state"],
        },
    )


# SLO ----------------------------------------------------------------------------------------


def _logout_response(provider: Provider, in_response_to: str, destination: str) -> Any:
    root = etree.Element(q(SAMLP, "LogoutResponse"), nsmap=assertion.NSMAP)
    root.set("ID", assertion.new_id())
    root.set("Version", "2.0")
    root.set("IssueInstant", assertion.instant(util.now()))
    root.set("Destination", destination)
    root.set("InResponseTo", in_response_to)
    etree.SubElement(root, q(SAML, "Issuer")).text = provider.issuer
    status = etree.SubElement(root, q(SAMLP, "Status"))
    etree.SubElement(status, q(SAMLP, "StatusCode"), Value=STATUS_SUCCESS)
    return root


def logout_request(provider: Provider, name_id: str, fmt: str, session_index: str) -> Any:
    root = etree.Element(q(SAMLP, "LogoutRequest"), nsmap=assertion.NSMAP)
    root.set("ID", assertion.new_id())
    root.set("Version", "2.0")
    root.set("IssueInstant", assertion.instant(util.now()))
    root.set("Destination", provider.row["sls_url"])
    etree.SubElement(root, q(SAML, "Issuer")).text = provider.issuer
    etree.SubElement(root, q(SAML, "NameID"), Format=fmt).text = name_id
    etree.SubElement(root, q(SAMLP, "SessionIndex")).text = session_index
    return root


@dataclass
class Outgoing:
    """A SAML message ready for the SP's SLS URL: with the HTTP-Redirect binding the URL that
    carries it (`url`), with HTTP-POST the URL and the form `fields` to post there."""

    binding: str
    url: str
    fields: dict[str, str]


def encode(provider: Provider, message: Any, kind: str, relay_state: str, sign: bool) -> Outgoing:
    """`message` (a LogoutRequest/LogoutResponse) for the provider's SLS URL by its SLS binding,
    signed when `sign` and the provider has a signing key: an enveloped signature with
    HTTP-POST, the query signature with HTTP-Redirect."""
    destination = provider.row["sls_url"]
    signer = provider.keys.signer if sign else None
    if provider.row["sls_binding"] == "post":
        if signer is not None:
            xmldsig.sign(
                message,
                signer,
                signature_algorithm=provider.row["signature_algorithm"],
                digest_algorithm=provider.row["digest_algorithm"],
            )
        data = etree.tostring(message, encoding="UTF-8", xml_declaration=True)
        fields = {kind: base64.b64encode(data).decode()}
        if relay_state:
            fields["RelayState"] = relay_state
        return Outgoing("post", destination, fields)
    data = etree.tostring(message, encoding="UTF-8")
    query = f"{kind}=" + urllib.parse.quote_plus(base64.b64encode(deflate(data)).decode())
    if relay_state:
        query += "&RelayState=" + urllib.parse.quote_plus(relay_state)
    if signer is not None and provider.signing_key_pem is not None:
        alg = xmldsig.query_algorithm(provider.row["signature_algorithm"], provider.signing_key_pem)
        query += "&SigAlg=" + urllib.parse.quote_plus(alg)
        signature = xmldsig.sign_query(query.encode(), alg, provider.signing_key_pem)
        query += "&Signature=" + urllib.parse.quote_plus(signature)
    joiner = "&" if urllib.parse.urlsplit(destination).query else "?"
    return Outgoing("redirect", f"{destination}{joiner}{query}", {})


def _deliver(
    request: web.Request,
    provider: Provider,
    message: Any,
    kind: str,
    relay_state: str,
    sign: bool,
) -> web.StreamResponse:
    """Send a LogoutRequest/LogoutResponse to the provider's SLS URL by its SLS binding."""
    out = encode(provider, message, kind, relay_state, sign)
    if out.binding == "post":
        return post_form(request, out.url, out.fields)
    return web.Response(status=302, headers={"Location": out.url, **_NO_STORE})


async def _end_browser_session(
    request: web.Request, who: executor.Browser, provider: Provider
) -> None:
    """End the browser's core session (outposts hear SESSION_END) and tell the logout
    listeners (OAuth2 back-channel logout, SAML back-channel logout to the other SPs), as a
    logout flow does. `provider`, which the browser is logging out with, is not told again."""
    if who.user is None:
        return
    service = _service(request)
    digest = sessions.digest(who.key)
    async with service.db.transaction() as tx:
        await crud.delete_matching(
            tx,
            records.SESSIONS,
            [
                crud.Filter("session_digest", "eq", digest),
                crud.Filter("provider", "eq", provider.pk),
            ],
        )
        ended = await sessions.end_digest(tx, digest)
        if ended:
            await events.record(
                tx,
                "logout",
                user=who.user,
                client_ip=who.client_ip,
                context={"application": request.match_info.get("slug", "")},
                retention=dt.timedelta(days=service.settings.events.retention_days),
            )
    if ended:
        for listener in service.flows.logout_listeners:
            await listener(digest, who.user)


async def slo(request: web.Request) -> web.StreamResponse:
    """SP-initiated logout (LogoutRequest), or the SP's LogoutResponse to ours."""
    try:
        provider = await load(request, request.match_info["slug"])
        if await _carries(request, "SAMLResponse"):
            return await _logout_answered(request, provider)
        incoming = await read_message(request, provider, "SAMLRequest")
        root = incoming.root
        request_id = _check_common(root, "LogoutRequest", provider)
        await _remember(request, provider, request_id, "logout")
    except Refused as exc:
        return error_page(request, exc.message, exc.status)
    who = await flows_api.browser(request)
    await _end_browser_session(request, who, provider)
    if not provider.row["sls_url"]:
        return _page(request, "Signed out", page="message", message="You have been signed out.")
    response = _logout_response(provider, request_id, provider.row["sls_url"])
    return _deliver(
        request,
        provider,
        response,
        "SAMLResponse",
        incoming.relay_state,
        bool(provider.row["sign_logout_response"]),
    )


async def _carries(request: web.Request, name: str) -> bool:
    """Whether the message (query, or form of the POST binding) has parameter `name`."""
    if request.method == "GET":
        return name in request.query
    if request.content_type != "application/x-www-form-urlencoded":
        return False
    try:
        return name in await request.post()
    except ValueError:
        raise Refused("Malformed form body.") from None


def sent_key(request_id: str) -> str:
    """Where a LogoutRequest sent from here is remembered until its LogoutResponse: a dict
    with `provider`, and `chain` (`slo_init`) or `flow` and `mode` (a logout flow's step)."""
    return "saml:logout-sent:" + crypto.secrets.sha256_hex(request_id)


async def _logout_answered(request: web.Request, provider: Provider) -> web.StreamResponse:
    """The SP's LogoutResponse to a LogoutRequest sent from here: its InResponseTo must name
    one we sent to this provider, once. Then the next SP of the logout in progress, if any."""
    service = _service(request)
    incoming = await read_message(request, provider, "SAMLResponse")
    root = incoming.root
    if root.tag != q(SAMLP, "LogoutResponse"):
        raise Refused("The message is not a LogoutResponse.")
    in_response_to = root.get("InResponseTo") or ""
    sent = await service.cache.get(sent_key(in_response_to)) if in_response_to else None
    if not isinstance(sent, dict) or sent.get("provider") != provider.pk:
        raise Refused("This LogoutResponse answers no logout request sent from here.")
    if await service.cache.pop(sent_key(in_response_to)) is None:  # answered meanwhile
        raise Refused("This LogoutResponse answers no logout request sent from here.")
    status = root.find(f"{{{SAMLP}}}Status/{{{SAMLP}}}StatusCode")
    if status is None or status.get("Value") != STATUS_SUCCESS:
        log.warning("saml_logout_response_not_success", provider=provider.pk)
    flow = sent.get("flow")
    if isinstance(flow, str) and flow:
        if sent.get("mode") == "native":
            # SECURITY: back to the logout flow the request was sent from, as remembered here;
            # the RelayState the SP echoes is never followed.
            target = f"/if/flow/{urllib.parse.quote(flow, safe='')}/"
            return web.Response(status=302, headers={"Location": target, **_NO_STORE})
        return _page(request, "Signed out", page="message", message="You have been signed out.")
    return await _next_logout(request, sent.get("chain"))


def _chain_key(key: str) -> str:
    return "saml:logout-chain:" + crypto.secrets.sha256_hex(key[:128])


async def _next_logout(request: web.Request, chain: str | None) -> web.StreamResponse:
    """Send the browser to the next SP of a front-channel logout (`chain`), or say it is done.
    The chain is kept server-side; the LogoutRequests only carry its key."""
    service = _service(request)
    queue = await service.cache.get(_chain_key(chain)) if chain else None
    while isinstance(queue, list) and queue:
        row = queue.pop(0)
        await service.cache.set(_chain_key(str(chain)), queue, PENDING_TTL)
        try:
            provider = await load_provider(service, _base(request), pk=int(row["provider"]))
        except Refused:
            continue
        if not provider.row["sls_url"]:
            continue
        message = logout_request(
            provider, row["name_id"], row["name_id_format"], row["session_index"]
        )
        await service.cache.set(
            sent_key(message.get("ID")), {"provider": provider.pk, "chain": chain}, PENDING_TTL
        )
        return _deliver(
            request,
            provider,
            message,
            "SAMLRequest",
            "",
            bool(provider.row["sign_logout_request"]),
        )
    if chain:
        await service.cache.delete(_chain_key(chain))
    return _page(request, "Signed out", page="message", message="You have been signed out.")


async def slo_init(request: web.Request) -> web.StreamResponse:
    """IdP-initiated front-channel logout (authentik's `frontchannel_native`): end the browser's
    session, then send it to each SP it signed in to in that session with front-channel logout
    (this application first), one LogoutRequest after another, each SP's LogoutResponse leading
    to the next. SPs with back-channel logout are told server-side when the session ends."""
    try:
        provider = await load(request, request.match_info["slug"])
    except Refused as exc:
        return error_page(request, exc.message, exc.status)
    service = _service(request)
    who = await flows_api.browser(request)
    rows: list[dict[str, Any]] = []
    if who.user is not None:
        async with service.db.read() as tx:
            found = await crud.rows(
                tx,
                records.SESSIONS,
                [crud.Filter("session_digest", "eq", sessions.digest(who.key))],
                limit=100,
            )
            methods = (
                {
                    p["pk"]: p["logout_method"]
                    for p in await crud.find_many(
                        tx, records.TABLE, "pk", list({r["provider"] for r in found})
                    )
                }
                if found
                else {}
            )
        seen: set[int] = set()
        for row in sorted(found, key=lambda r: r["provider"] != provider.pk):
            if methods.get(row["provider"]) == "backchannel" or row["provider"] in seen:
                continue
            seen.add(row["provider"])
            rows.append(
                {k: row[k] for k in ("provider", "name_id", "name_id_format", "session_index")}
            )
    await _end_browser_session(request, who, provider)
    chain = secrets.token_urlsafe(32)
    await service.cache.set(_chain_key(chain), rows, PENDING_TTL)
    return await _next_logout(request, chain)


# The unified endpoint ------------------------------------------------------------------------


async def unified(request: web.Request) -> web.StreamResponse:
    """authentik's `url_unified`: one URL for SSO and SLO, either binding; the message's root
    element says which (it is read again, with every check, by the handler it goes to)."""
    try:
        if request.method == "GET":
            source: Any = request.query
        elif request.content_type == "application/x-www-form-urlencoded":
            try:
                source = await request.post()
            except ValueError:
                raise Refused("Malformed form body.") from None
        else:
            raise Refused("Send the SAML message as an HTML form (HTTP-POST binding).")
        if "SAMLResponse" in source:
            return await slo(request)
        encoded = source.get("SAMLRequest")
        if not isinstance(encoded, str) or not encoded:
            raise Refused("No SAMLRequest was sent.")
        data = b64decode(encoded)
        root = parse(inflate(data) if request.method == "GET" else data)
    except MessageError as exc:
        return error_page(request, f"The SAML message cannot be read: {exc}.")
    except Refused as exc:
        return error_page(request, exc.message, exc.status)
    if root.tag == q(SAMLP, "LogoutRequest"):
        return await slo(request)
    return await sso(request)


# Metadata -----------------------------------------------------------------------------------


async def metadata_view(request: web.Request) -> web.StreamResponse:
    try:
        provider = await load(request, request.match_info["slug"])
    except Refused as exc:
        return error_page(request, exc.message, exc.status)
    document = await crypto.work.run(
        metadata.idp_metadata, provider.row, _base(request), provider.slug, provider.keys.signer
    )
    headers = {}
    if "download" in request.query:
        headers["Content-Disposition"] = (
            f'attachment; filename="{provider.slug}_authentik_meta.xml"'
        )
    return web.Response(body=document, content_type="application/xml", headers=headers)
