"""XML Signature and XML Encryption for the SAML provider, on python-xmlsec and signxml.

- `sign` signs an element in place (enveloped signature, exclusive C14N, the reference naming the
  element's `ID`), with the signature placed where SAML's schema wants it: right after `Issuer`.
- `verify` checks an embedded signature against one certificate and returns ONLY the element the
  signature covers, re-parsed from the signed bytes (signxml's `signed_xml`). Callers must read
  nothing else of the document: that is what makes signature wrapping (XSW) harmless.
- `sign_query` / `verify_query` are the HTTP-Redirect binding's detached signatures over the
  query string.
- `encrypt` replaces an assertion by `EncryptedAssertion` (AES-256-GCM or AES-128-CBC content
  encryption, the key transported with RSA-OAEP to the SP's certificate).

Accepted when verifying: RSA and ECDSA with SHA-256, SHA-384 or SHA-512. SHA-1 signatures and
digests from a service provider are refused, unless the caller allows them (`allow_sha1`: the
provider was set to SHA-1 by an administrator, for a service provider that knows nothing newer;
authentik accepts SHA-1 from every service provider). Signing uses what the provider is
configured with, SHA-1 included when an administrator asks for it, as authentik allows.
"""

from __future__ import annotations

import base64
import functools
from dataclasses import dataclass
from typing import Any

import xmlsec
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from lxml import etree
from signxml.algorithms import DigestAlgorithm, SignatureMethod
from signxml.exceptions import InvalidInput, SignXMLException
from signxml.verifier import SignatureConfiguration, XMLVerifier

DS = "http://www.w3.org/2000/09/xmldsig#"
XENC = "http://www.w3.org/2001/04/xmlenc#"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"

_SIGN_METHODS = {
    "http://www.w3.org/2000/09/xmldsig#rsa-sha1": xmlsec.constants.TransformRsaSha1,
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256": xmlsec.constants.TransformRsaSha256,
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384": xmlsec.constants.TransformRsaSha384,
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512": xmlsec.constants.TransformRsaSha512,
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1": xmlsec.constants.TransformEcdsaSha1,
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256": xmlsec.constants.TransformEcdsaSha256,
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384": xmlsec.constants.TransformEcdsaSha384,
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512": xmlsec.constants.TransformEcdsaSha512,
    "http://www.w3.org/2000/09/xmldsig#dsa-sha1": xmlsec.constants.TransformDsaSha1,
}
_DIGESTS = {
    "http://www.w3.org/2000/09/xmldsig#sha1": xmlsec.constants.TransformSha1,
    "http://www.w3.org/2001/04/xmlenc#sha256": xmlsec.constants.TransformSha256,
    "http://www.w3.org/2001/04/xmldsig-more#sha384": xmlsec.constants.TransformSha384,
    "http://www.w3.org/2001/04/xmlenc#sha512": xmlsec.constants.TransformSha512,
}
# What a service provider may sign its requests with.
_VERIFY = SignatureConfiguration(
    require_x509=False,
    expect_references=1,
    signature_methods=frozenset(
        {
            SignatureMethod.RSA_SHA256,
            SignatureMethod.RSA_SHA384,
            SignatureMethod.RSA_SHA512,
            SignatureMethod.ECDSA_SHA256,
            SignatureMethod.ECDSA_SHA384,
            SignatureMethod.ECDSA_SHA512,
        }
    ),
    digest_algorithms=frozenset(
        {DigestAlgorithm.SHA256, DigestAlgorithm.SHA384, DigestAlgorithm.SHA512}
    ),
)
# ... and with SHA-1 besides, for a provider an administrator set to SHA-1.
_VERIFY_SHA1 = SignatureConfiguration(
    require_x509=False,
    expect_references=1,
    signature_methods=_VERIFY.signature_methods
    | {SignatureMethod.RSA_SHA1, SignatureMethod.ECDSA_SHA1},
    digest_algorithms=_VERIFY.digest_algorithms | {DigestAlgorithm.SHA1},
)
SHA1_ALGORITHMS = frozenset(
    {
        "http://www.w3.org/2000/09/xmldsig#sha1",
        "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1",
    }
)
_QUERY_HASHES_SHA1: dict[str, tuple[str, Any]] = {
    "http://www.w3.org/2000/09/xmldsig#rsa-sha1": ("rsa", hashes.SHA1),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1": ("ec", hashes.SHA1),
}
_QUERY_HASHES: dict[str, tuple[str, Any]] = {
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256": ("rsa", hashes.SHA256),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384": ("rsa", hashes.SHA384),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512": ("rsa", hashes.SHA512),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256": ("ec", hashes.SHA256),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384": ("ec", hashes.SHA384),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512": ("ec", hashes.SHA512),
}
AES256_GCM = "http://www.w3.org/2009/xmlenc11#aes256-gcm"
AES128_CBC = "http://www.w3.org/2001/04/xmlenc#aes128-cbc"
_CONTENT = {
    AES256_GCM: (xmlsec.constants.TransformAes256Gcm, 256),
    AES128_CBC: (xmlsec.constants.TransformAes128Cbc, 128),
}


class SignatureError(ValueError):
    """A signature that is missing, malformed, made with another key or a refused algorithm."""


@dataclass(frozen=True)
class Signer:
    """A private key with its certificate, loaded once for many signatures."""

    key_pem: str
    cert_pem: str

    def _key(self) -> xmlsec.Key:
        return _loaded(self.key_pem, self.cert_pem)


@functools.lru_cache(maxsize=256)
def _loaded(key_pem: str, cert_pem: str) -> xmlsec.Key:
    """A key parsed once: assigning it to a signature context duplicates it (a reference to the
    same OpenSSL key), so one parsed key serves every signature and thread."""
    key = xmlsec.Key.from_memory(key_pem.encode(), xmlsec.constants.KeyDataFormatPem)
    key.load_cert_from_memory(cert_pem.encode(), xmlsec.constants.KeyDataFormatCertPem)
    return key


def algorithms_known(signature_algorithm: str, digest_algorithm: str) -> bool:
    return signature_algorithm in _SIGN_METHODS and digest_algorithm in _DIGESTS


def sign(
    element: Any,
    signer: Signer,
    *,
    signature_algorithm: str,
    digest_algorithm: str,
) -> None:
    """Sign `element` (which has an `ID`) in place; the signature goes after its `Issuer`
    child, or first when it has none."""
    node_id = element.get("ID")
    if not node_id:
        raise SignatureError("the element to sign has no ID")
    signature = xmlsec.template.create(
        element, xmlsec.constants.TransformExclC14N, _SIGN_METHODS[signature_algorithm], ns="ds"
    )
    issuer = element.find(f"{{{SAML}}}Issuer")
    if issuer is not None:
        issuer.addnext(signature)
    else:
        element.insert(0, signature)
    ref = xmlsec.template.add_reference(signature, _DIGESTS[digest_algorithm], uri=f"#{node_id}")
    xmlsec.template.add_transform(ref, xmlsec.constants.TransformEnveloped)
    xmlsec.template.add_transform(ref, xmlsec.constants.TransformExclC14N)
    key_info = xmlsec.template.ensure_key_info(signature)
    xmlsec.template.add_x509_data(key_info)
    ctx = xmlsec.SignatureContext()
    ctx.register_id(element, "ID")
    ctx.key = signer._key()
    ctx.sign(signature)


def verify(element: Any, cert_pem: str, *, allow_sha1: bool = False) -> Any:
    """The element the one embedded signature covers, when `cert_pem`'s key made it.

    # SECURITY: the return value is parsed from the bytes the signature covers; the caller must
    # use it alone, never the document it was given, whatever else that document holds.
    """
    try:
        result = XMLVerifier().verify(
            element,
            x509_cert=cert_pem,
            expect_config=_VERIFY_SHA1 if allow_sha1 else _VERIFY,
            ignore_ambiguous_key_info=True,
        )
    except (SignXMLException, InvalidInput, InvalidSignature, ValueError) as exc:
        raise SignatureError(str(exc)[:200] or "invalid signature") from None
    if isinstance(result, list):  # several references: never expected
        raise SignatureError("exactly one signed reference is accepted")
    return result.signed_xml


def _public_key(cert_pem: str) -> Any:
    return x509.load_pem_x509_certificate(cert_pem.encode()).public_key()


def verify_query(
    signed: bytes, signature_b64: str, sig_alg: str, cert_pem: str, *, allow_sha1: bool = False
) -> None:
    """Check the HTTP-Redirect binding's signature over `signed` (the query's
    `SAMLRequest=…&RelayState=…&SigAlg=…`, exactly as sent)."""
    known = _QUERY_HASHES.get(sig_alg) or (_QUERY_HASHES_SHA1.get(sig_alg) if allow_sha1 else None)
    if known is None:
        raise SignatureError("this signature algorithm is not accepted")
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except ValueError:
        raise SignatureError("the signature is not base64") from None
    kind, hash_cls = known
    key = _public_key(cert_pem)
    try:
        if kind == "rsa" and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signed, padding.PKCS1v15(), hash_cls())
        elif kind == "ec" and isinstance(key, ec.EllipticCurvePublicKey):
            size = (key.curve.key_size + 7) // 8
            if len(signature) == 2 * size:  # XML Signature's r || s
                r = int.from_bytes(signature[:size], "big")
                s = int.from_bytes(signature[size:], "big")
                signature = utils.encode_dss_signature(r, s)
            key.verify(signature, signed, ec.ECDSA(hash_cls()))
        else:
            raise SignatureError("the algorithm does not match the certificate's key")
    except InvalidSignature:
        raise SignatureError("the signature does not match") from None


def sign_query(signed: bytes, sig_alg: str, key_pem: str) -> str:
    """The HTTP-Redirect binding's signature of `signed`, base64."""
    known = _QUERY_HASHES.get(sig_alg)
    if known is None:
        raise SignatureError("this signature algorithm cannot sign a query")
    kind, hash_cls = known
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    if kind == "rsa" and isinstance(key, rsa.RSAPrivateKey):
        raw = key.sign(signed, padding.PKCS1v15(), hash_cls())
    elif kind == "ec" and isinstance(key, ec.EllipticCurvePrivateKey):
        r, s = utils.decode_dss_signature(key.sign(signed, ec.ECDSA(hash_cls())))
        size = (key.curve.key_size + 7) // 8
        raw = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    else:
        raise SignatureError("the algorithm does not match the key")
    return base64.b64encode(raw).decode()


def query_algorithm(signature_algorithm: str, key_pem: str) -> str:
    """The algorithm a query signature made with `key_pem` uses: the provider's when it fits
    the key, else SHA-256 of the key's kind."""
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    kind = "ec" if isinstance(key, ec.EllipticCurvePrivateKey) else "rsa"
    known = _QUERY_HASHES.get(signature_algorithm)
    if known is not None and known[0] == kind:
        return signature_algorithm
    return f"http://www.w3.org/2001/04/xmldsig-more#{'ecdsa' if kind == 'ec' else 'rsa'}-sha256"


def encrypt(assertion: Any, cert_pem: str, method: str = AES256_GCM) -> Any:
    """Replace `assertion` (inside its parent) by an `EncryptedAssertion` for `cert_pem`'s
    holder; the new element is returned. The plaintext is the assertion serialized on its own,
    with every namespace it uses declared, so it parses wherever the SP splices it back."""
    transform, bits = _CONTENT[method]
    plaintext = etree.tostring(assertion, encoding="UTF-8", xml_declaration=False)
    wrapper = etree.Element(f"{{{SAML}}}EncryptedAssertion", nsmap={"saml": SAML})
    parent = assertion.getparent()
    if parent is not None:
        parent.replace(assertion, wrapper)
    enc_data = xmlsec.template.encrypted_data_create(
        wrapper, transform, type=xmlsec.constants.TypeEncElement, ns="xenc"
    )
    xmlsec.template.encrypted_data_ensure_cipher_value(enc_data)
    key_info = xmlsec.template.encrypted_data_ensure_key_info(enc_data, ns="ds")
    enc_key = xmlsec.template.add_encrypted_key(key_info, xmlsec.constants.TransformRsaOaep)
    xmlsec.template.encrypted_data_ensure_cipher_value(enc_key)
    manager = xmlsec.KeysManager()
    manager.add_key(
        xmlsec.Key.from_memory(cert_pem.encode(), xmlsec.constants.KeyDataFormatCertPem, None)
    )
    ctx = xmlsec.EncryptionContext(manager)
    ctx.key = xmlsec.Key.generate(
        xmlsec.constants.KeyDataAes, bits, xmlsec.constants.KeyDataTypeSession
    )
    wrapper.append(ctx.encrypt_binary(enc_data, plaintext))
    return wrapper


def certificate_body(cert_pem: str) -> str:
    """The base64 DER of a PEM certificate, as metadata's `X509Certificate` holds it."""
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


def certificate_pem(body: str) -> str:
    """A certificate from metadata's base64 DER, as PEM (ValueError when it is none)."""
    try:
        der = base64.b64decode("".join(body.split()), validate=True)
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        raise ValueError("not an X.509 certificate") from None
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def raw_sign_rate_probe(key_pem: str, data: bytes) -> bytes:
    """One raw RSA-SHA256 (or ECDSA) signature of `data`: the benchmark's baseline."""
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(hashes.SHA256()))
    raise SignatureError("unsupported key")
