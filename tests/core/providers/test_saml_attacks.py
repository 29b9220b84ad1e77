"""Attacks on the SAML IdP: each gets a 4xx page (or a SAML error status), never an assertion for
the attacker's content and never a 500.

XML signature wrapping (eight placements of a forged request around a legitimately signed one),
XXE and entity expansion in every XML input, a comment inside a NameID, a replayed request, a
stale one, a foreign ACS URL, RelayState as an open redirect, an unsigned request where a
signature is required, a forged query signature, a DEFLATE bomb, and a LogoutResponse answering
nothing we sent."""

from __future__ import annotations

import base64
import copy
import secrets
import urllib.parse
import zlib
from collections.abc import Callable
from typing import Any

import pytest
from lxml import etree
from oauth2kit import login
from samlkit import (
    ACS,
    SAML,
    SAMLP,
    authn_request,
    follow,
    form_of,
    import_pair,
    make_saml_provider,
    post_body,
    redirect_query,
    rsa_pair,
)
from signxml import methods
from signxml.signer import XMLSigner

DS = "http://www.w3.org/2000/09/xmldsig#"
EMAIL = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
EVIL_ID = "_evil"


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
async def signed_sp(api: Any) -> dict[str, Any]:
    """Provider `wiki`, requiring requests signed by the SP's key."""
    key, cert = rsa_pair("sp")
    verification = await import_pair(api, "sp", cert)
    provider = await make_saml_provider(api, "wiki", verification_kp=verification)
    return {"provider": provider, "key": key, "cert": cert}


async def _post(client: Any, xml: bytes | str, relay: str | None = "rs") -> Any:
    response = await client.post(
        "/application/saml/wiki/sso/binding/post/",
        data=post_body(xml, relay),
        allow_redirects=False,
    )
    return await follow(client, response)


async def _redirect(client: Any, query: str) -> Any:
    response = await client.get(
        f"/application/saml/wiki/sso/binding/redirect/?{query}", allow_redirects=False
    )
    return await follow(client, response)


def _answer(page_text: str) -> Any:
    action, fields = form_of(page_text)
    assert action == ACS
    return etree.fromstring(base64.b64decode(fields["SAMLResponse"]))


class _LegacySigner(XMLSigner):  # type: ignore[misc]
    """signxml's signer, allowed to make the SHA-1 signatures an old service provider makes."""

    def check_deprecated_methods(self) -> None:
        return None


def _sign(xml: str, key: str, cert: str, hash_name: str = "sha256") -> Any:
    root = etree.fromstring(xml.encode())
    signer = _LegacySigner(
        method=methods.enveloped,
        signature_algorithm=f"rsa-{hash_name}",
        digest_algorithm=hash_name,
        c14n_algorithm="http://www.w3.org/2001/10/xml-exc-c14n#",
    )
    return signer.sign(root, key=key, cert=cert, reference_uri=root.get("ID"))


def _legit(sp: dict[str, Any]) -> Any:
    request_id = "_legit" + secrets.token_hex(8)
    return _sign(authn_request(request_id=request_id, name_id_format=EMAIL), sp["key"], sp["cert"])


def _evil_clone(signed: Any) -> Any:
    """The attacker's request: the signed one's content with another ID and NameIDPolicy, and
    no signature of its own."""
    evil = copy.deepcopy(signed)
    for signature in evil.findall(f"{{{DS}}}Signature"):
        evil.remove(signature)
    evil.set("ID", EVIL_ID + secrets.token_hex(4))
    policy = evil.find(f"{{{SAMLP}}}NameIDPolicy")
    if policy is not None:
        policy.set("Format", PERSISTENT)
    return evil


def _signature(root: Any) -> Any:
    return root.find(f"{{{DS}}}Signature")


def xsw1(signed: Any) -> Any:  # forged root; the signed original inside the signature's Object
    evil = _evil_clone(signed)
    signature = copy.deepcopy(_signature(signed))
    obj = etree.SubElement(signature, f"{{{DS}}}Object")
    original = copy.deepcopy(signed)
    original.remove(_signature(original))
    obj.append(original)
    evil.append(signature)
    return evil


def xsw2(signed: Any) -> Any:  # forged root; the signed original as a detached sibling
    evil = _evil_clone(signed)
    original = copy.deepcopy(signed)
    signature = _signature(original)
    original.remove(signature)
    evil.insert(0, signature)
    evil.insert(0, original)
    return evil


def xsw3(signed: Any) -> Any:  # the original root, a forged copy (same ID) as its first child
    root = copy.deepcopy(signed)
    evil = _evil_clone(signed)
    evil.set("ID", signed.get("ID"))
    root.insert(0, evil)
    return root


def xsw4(signed: Any) -> Any:  # a forged root wrapping the whole signed original
    evil = _evil_clone(signed)
    evil.append(copy.deepcopy(signed))
    return evil


def xsw5(signed: Any) -> Any:  # the signature moved into a forged copy inside the original
    root = copy.deepcopy(signed)
    signature = _signature(root)
    root.remove(signature)
    evil = _evil_clone(signed)
    evil.append(signature)
    wrapper = etree.Element(f"{{{SAMLP}}}Extensions")
    wrapper.append(evil)
    root.append(wrapper)
    return root


def xsw6(signed: Any) -> Any:  # a forged root whose signature's Object holds the original
    evil = _evil_clone(signed)
    original = copy.deepcopy(signed)
    signature = _signature(original)
    original.remove(signature)
    obj = etree.SubElement(signature, f"{{{DS}}}Object")
    obj.append(original)
    evil.append(signature)
    return evil


def xsw7(signed: Any) -> Any:  # the signed original hidden in the forged root's Extensions
    evil = _evil_clone(signed)
    extensions = etree.Element(f"{{{SAMLP}}}Extensions")
    extensions.append(copy.deepcopy(signed))
    evil.find(f"{{{SAML}}}Issuer").addnext(extensions)
    return evil


def xsw8(signed: Any) -> Any:  # forged root with the original's signature, original in Object
    evil = _evil_clone(signed)
    signature = copy.deepcopy(_signature(signed))
    evil.append(signature)
    obj = etree.SubElement(signature, f"{{{DS}}}Object")
    original = copy.deepcopy(signed)
    original.remove(_signature(original))
    obj.append(original)
    evil.set("ID", signed.get("ID"))
    return evil


@pytest.mark.parametrize("wrap", [xsw1, xsw2, xsw3, xsw4, xsw5, xsw6, xsw7, xsw8])
async def test_signature_wrapping(
    client: Any, signed_sp: dict[str, Any], wrap: Callable[[Any], Any]
) -> None:
    """Whatever the placement, the forged request's ID and NameIDPolicy are never answered:
    the request is refused, or only the signed element is used."""
    await login(client)
    signed = _legit(signed_sp)
    page = await _post(client, etree.tostring(wrap(signed)))
    text = await page.text()
    assert page.status < 500
    if page.status != 200:
        assert page.status in (400, 403), text
        return
    answer = _answer(text)
    assert answer.get("InResponseTo") == signed.get("ID")
    name_id = answer.find(f".//{{{SAML}}}NameID")
    assert name_id.get("Format") == EMAIL
    assert EVIL_ID not in text


async def test_a_legitimately_signed_request_works(client: Any, signed_sp: dict[str, Any]) -> None:
    await login(client)
    signed = _legit(signed_sp)
    page = await _post(client, etree.tostring(signed))
    assert page.status == 200, await page.text()
    answer = _answer(await page.text())
    assert answer.get("InResponseTo") == signed.get("ID")


async def test_an_unsigned_request_is_refused_when_a_signature_is_required(
    client: Any, signed_sp: dict[str, Any]
) -> None:
    await login(client)
    for page in (
        await _post(client, authn_request()),
        await _redirect(client, redirect_query(authn_request(), "rs")),
    ):
        assert page.status == 403
        assert "SAMLResponse" not in await page.text()


async def test_a_tampered_signed_request_is_refused(client: Any, signed_sp: dict[str, Any]) -> None:
    await login(client)
    signed = _legit(signed_sp)
    signed.find(f"{{{SAMLP}}}NameIDPolicy").set("Format", PERSISTENT)
    page = await _post(client, etree.tostring(signed))
    assert page.status == 403


async def test_a_forged_query_signature_is_refused(client: Any, signed_sp: dict[str, Any]) -> None:
    await login(client)
    query = redirect_query(
        authn_request(),
        "rs",
        SigAlg="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        Signature=base64.b64encode(b"\x00" * 256).decode(),
    )
    page = await _redirect(client, query)
    assert page.status == 403
    query = redirect_query(
        authn_request(),
        "rs",
        SigAlg="http://www.w3.org/2000/09/xmldsig#rsa-sha1",
        Signature=base64.b64encode(b"\x00" * 256).decode(),
    )
    assert (await _redirect(client, query)).status == 403


RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
SHA1 = "http://www.w3.org/2000/09/xmldsig#sha1"


def _query_signed(xml: str, key_pem: str, sig_alg: str, hash_cls: Any) -> str:
    """The Redirect binding's query, signed as a service provider signs it."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    unsigned = redirect_query(xml, "rs", SigAlg=sig_alg)
    key: Any = serialization.load_pem_private_key(key_pem.encode(), password=None)
    signature = key.sign(unsigned.encode(), padding.PKCS1v15(), hash_cls())
    return unsigned + "&" + urllib.parse.urlencode({"Signature": base64.b64encode(signature)})


@pytest.mark.parametrize("provider_hash", ["sha256", "sha1"])
async def test_sha1_signed_requests_only_where_the_admin_chose_sha1(
    client: Any, api: Any, provider_hash: str
) -> None:
    """SHA-1 is broken for signatures: a SHA-1-signed request (embedded or in the query) is
    refused, unless the administrator set the provider itself to SHA-1 for a service provider
    that knows nothing newer. Then it is accepted, and still only with the SP's key."""
    from cryptography.hazmat.primitives import hashes

    key, cert = rsa_pair("sp")
    verification = await import_pair(api, "sp", cert)
    legacy = provider_hash == "sha1"
    algorithms = {"signature_algorithm": RSA_SHA1, "digest_algorithm": SHA1} if legacy else {}
    await make_saml_provider(api, "wiki", verification_kp=verification, **algorithms)
    await login(client)
    request_id = "_sha1" + secrets.token_hex(8)
    xml = authn_request(request_id=request_id, name_id_format=EMAIL)
    embedded = await _post(client, etree.tostring(_sign(xml, key, cert, "sha1")))
    query = await _redirect(client, _query_signed(xml, key, RSA_SHA1, hashes.SHA1))
    if not legacy:
        assert embedded.status == 403 and query.status == 403
        return
    assert embedded.status == 200, await embedded.text()
    assert _answer(await embedded.text()).get("InResponseTo") == request_id
    again = authn_request(request_id=request_id + "q", name_id_format=EMAIL)
    query = await _redirect(client, _query_signed(again, key, RSA_SHA1, hashes.SHA1))
    assert query.status == 200, await query.text()
    # Another key's SHA-1 signature is still refused.
    other_key, other_cert = rsa_pair("other")
    forged = authn_request(request_id=request_id + "f", name_id_format=EMAIL)
    page = await _post(client, etree.tostring(_sign(forged, other_key, other_cert, "sha1")))
    assert page.status == 403


XXE = (
    '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    '<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_x" '
    'Version="2.0" IssueInstant="2030-01-01T00:00:00Z"><saml:Issuer '
    'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">&x;</saml:Issuer></samlp:AuthnRequest>'
)
LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10 if i > 1 else "&lol;" * 10}">'
        for i in range(1, 10)
    )
    + ']><samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">&lol9;'
    "</samlp:AuthnRequest>"
)


@pytest.mark.parametrize("document", [XXE, LAUGHS], ids=["xxe", "billion-laughs"])
@pytest.mark.parametrize("endpoint", ["sso", "slo"])
async def test_dtds_are_refused_everywhere(
    client: Any, api: Any, document: str, endpoint: str
) -> None:
    await make_saml_provider(api, "wiki")
    await login(client)
    for binding in ("redirect", "post"):
        path = f"/application/saml/wiki/{endpoint}/binding/{binding}/"
        if binding == "redirect":
            response = await client.get(f"{path}?{redirect_query(document)}", allow_redirects=False)
        else:
            response = await client.post(path, data=post_body(document), allow_redirects=False)
        text = await response.text()
        assert response.status == 400, text
        assert "DTD" in text and "root:" not in text


async def test_a_deflate_bomb_is_refused(client: Any, api: Any) -> None:
    await make_saml_provider(api, "wiki")
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    # What fits in a URL (aiohttp takes 8 KiB request lines) inflates to 4 MB.
    bomb = compressor.compress(b"<a>" + b" " * 4_000_000) + compressor.flush()
    assert len(bomb) < 5_000
    query = "SAMLRequest=" + base64.b64encode(bomb).decode().replace("+", "%2B").replace(
        "/", "%2F"
    ).replace("=", "%3D")
    response = await client.get(
        f"/application/saml/wiki/sso/binding/redirect/?{query}", allow_redirects=False
    )
    assert response.status == 400
    assert "inflates beyond" in await response.text()


@pytest.mark.parametrize(
    "encoded",
    ["not base64!!", base64.b64encode(b"not deflate").decode(), ""],
    ids=["base64", "deflate", "empty"],
)
async def test_garbage_is_a_400(client: Any, api: Any, encoded: str) -> None:
    await make_saml_provider(api, "wiki")
    response = await client.get(
        "/application/saml/wiki/sso/binding/redirect/",
        params={"SAMLRequest": encoded},
        allow_redirects=False,
    )
    assert response.status == 400
    response = await client.post(
        "/application/saml/wiki/sso/binding/post/",
        data={"SAMLRequest": encoded},
        allow_redirects=False,
    )
    assert response.status == 400


async def test_a_replayed_request_is_refused(client: Any, api: Any) -> None:
    await make_saml_provider(api, "wiki")
    await login(client)
    request = authn_request(request_id="_once")
    first = await _redirect(client, redirect_query(request, "rs"))
    assert first.status == 200 and _answer(await first.text()).get("InResponseTo") == "_once"
    again = await _post(client, request)
    assert again.status == 400
    assert "already used" in await again.text()


async def test_a_stale_request_is_refused(client: Any, api: Any) -> None:
    import datetime as dt

    await make_saml_provider(api, "wiki")
    await login(client)
    old = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    page = await _post(client, authn_request(instant=old))
    assert page.status == 400


@pytest.mark.parametrize(
    "request_xml",
    [
        authn_request(acs="https://evil.example/acs"),
        authn_request(destination="https://evil.example/sso"),
        authn_request(extra="", acs=None, name_id_format=None).replace(
            'Version="2.0"', 'Version="2.0" AssertionConsumerServiceIndex="7"'
        ),
    ],
    ids=["acs", "destination", "acs-index"],
)
async def test_a_foreign_acs_url_is_refused(client: Any, api: Any, request_xml: str) -> None:
    await make_saml_provider(api, "wiki")
    await login(client)
    page = await _post(client, request_xml)
    text = await page.text()
    assert page.status == 400, text
    assert "SAMLResponse" not in text and "evil.example" not in page.headers.get("Location", "")


async def test_relay_state_is_never_followed(client: Any, api: Any) -> None:
    await make_saml_provider(api, "wiki", default_relay_state="/home")
    await login(client)
    page = await _redirect(client, redirect_query(authn_request(), "https://evil.example/"))
    assert page.status == 200
    action, fields = form_of(await page.text())
    assert action == ACS  # carried back to the SP only
    response = await client.get(
        "/application/saml/wiki/sso/binding/init/?RelayState=https://evil.example/",
        allow_redirects=False,
    )
    page = await follow(client, response)
    action, fields = form_of(await page.text())
    assert action == ACS and fields["RelayState"] == "/home"
    bad = await _redirect(client, redirect_query(authn_request(), "a\r\nLocation: x"))
    assert bad.status == 400


async def test_comments_inside_a_name_id_do_not_truncate_it(client: Any, api: Any) -> None:
    status, mapping = await api(
        "POST",
        "propertymappings/provider/saml/",
        json={
            "name": "nid",
            "saml_name": "nid",
            "expression": 'return "victim@example.com<!---->.evil.example"',
        },
    )
    assert status == 201, mapping
    await make_saml_provider(api, "wiki", name_id_mapping=mapping["pk"])
    await login(client)
    for _ in range(3):  # the expression pool's first run may time out on a loaded machine
        page = await _post(client, authn_request())
        answer = _answer(await page.text())
        name_id = answer.find(f".//{{{SAML}}}NameID")
        if name_id.text.startswith("victim"):
            break
    assert list(name_id) == []  # text only: no comment node an SP could cut it at
    assert name_id.text == "victim@example.com<!---->.evil.example"
    from tessera.core.providers.saml.xml import parse, text_of

    crafted = (
        f'<saml:NameID xmlns:saml="{SAML}">victim@example.com<!---->.evil.example</saml:NameID>'
    )
    assert text_of(parse(crafted.encode())) == "victim@example.com.evil.example"


async def test_a_logout_response_must_answer_our_request(client: Any, api: Any) -> None:
    await make_saml_provider(api, "wiki")
    response = (
        f'<samlp:LogoutResponse xmlns:samlp="{SAMLP}" ID="_r" Version="2.0" '
        'IssueInstant="2030-01-01T00:00:00Z" InResponseTo="_never-sent">'
        f'<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/>'
        "</samlp:Status></samlp:LogoutResponse>"
    )
    page = await client.post(
        "/application/saml/wiki/slo/binding/post/",
        data={"SAMLResponse": base64.b64encode(response.encode()).decode()},
    )
    assert page.status == 400
    assert "answers no logout request" in await page.text()


async def test_unknown_applications_are_a_404(client: Any, api: Any) -> None:
    response = await client.get(
        f"/application/saml/nope/sso/binding/redirect/?{redirect_query(authn_request())}"
    )
    assert response.status == 404


@pytest.mark.parametrize("wrap", [xsw1, xsw2, xsw3, xsw4, xsw5, xsw6, xsw7, xsw8])
async def test_signature_wrapping_of_logout_requests(
    client: Any, signed_sp: dict[str, Any], wrap: Callable[[Any], Any]
) -> None:
    """A forged LogoutRequest around a signed one is refused, or answered for the signed one."""
    import datetime as dt

    await login(client)
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    legit_id = "_legit" + secrets.token_hex(8)
    request = (
        f'<samlp:LogoutRequest xmlns:samlp="{SAMLP}" xmlns:saml="{SAML}" ID="{legit_id}" '
        f'Version="2.0" IssueInstant="{when}"><saml:Issuer>sp</saml:Issuer>'
        "<saml:NameID>someone</saml:NameID></samlp:LogoutRequest>"
    )
    signed = _sign(request, signed_sp["key"], signed_sp["cert"])
    response = await client.post(
        "/application/saml/wiki/slo/binding/post/",
        data=post_body(etree.tostring(wrap(signed)), "rs"),
        allow_redirects=False,
    )
    text = await response.text()
    assert response.status < 500
    if response.status in (400, 403):
        return
    assert response.status == 302, text
    location = response.headers["Location"]
    assert EVIL_ID not in location
    encoded = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)["SAMLResponse"][0]
    answer = etree.fromstring(zlib.decompress(base64.b64decode(encoded), -15))
    assert answer.get("InResponseTo") == legit_id


@pytest.mark.parametrize(
    "path",
    [
        "sso/binding/post/",
        "slo/binding/post/",
        "",
        "sso/binding/init/",
        "slo/binding/init/",
        "sso/continue/",
    ],
)
@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data; boundary=x", b"--x\r\nbroken"),
        ("application/json", b'{"SAMLRequest": 1}'),
        ("application/x-www-form-urlencoded", b"SAMLRequest=%ff%fe&SAMLRequest=a"),
        ("application/x-www-form-urlencoded", b"SAMLResponse=" + b"A" * 4000),
        ("text/plain", b"\x00\xff" * 100),
    ],
    ids=["multipart", "json", "duplicate", "response-garbage", "binary"],
)
async def test_malformed_bodies_are_never_a_500(
    client: Any, api: Any, path: str, content_type: str, body: bytes
) -> None:
    await make_saml_provider(api, "wiki")
    response = await client.post(
        f"/application/saml/wiki/{path}",
        data=body,
        headers={"Content-Type": content_type},
        allow_redirects=False,
    )
    assert response.status < 500, await response.text()
