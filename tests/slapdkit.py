"""A real OpenLDAP `slapd` (Debian's) on a free loopback port, for tests and benchmarks.

`start(directory, entries=...)` writes a `slapd.conf` in `directory` (an mdb database under the
suffix, the core, cosine, inetorgperson and nis schemas, a root DN and password, and StartTLS
with a certificate signed by a throwaway CA from `tlskit`), loads `entries` (LDIF) offline with
`slapadd` (fast: ten thousand users in about a second), starts `slapd` and waits until it
answers. `Slapd.stop()` ends it. `person`, `group` and `organizational_units` write LDIF.

ACLs: a user may write their own password, anyone may bind, everything else is readable by
bound users; the root DN may do anything.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import ipaddress
import os
import socket
import subprocess
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import tlskit
from cryptography import x509
from helpers import free_port

SLAPD = "/usr/sbin/slapd"
SLAPADD = "/usr/sbin/slapadd"
SCHEMAS = "/etc/ldap/schema"
MODULES = "/usr/lib/ldap"
SUFFIX = "dc=example,dc=org"
ROOT_DN = f"cn=admin,{SUFFIX}"
ROOT_PASSWORD = "root-secret-1"  # the root DN's password in every test directory

_CONF = """\
include {schemas}/core.schema
include {schemas}/cosine.schema
include {schemas}/inetorgperson.schema
include {schemas}/nis.schema
modulepath {modules}
moduleload back_mdb
pidfile {dir}/slapd.pid
argsfile {dir}/slapd.args
TLSCACertificateFile {dir}/ca.pem
TLSCertificateFile {dir}/server.pem
TLSCertificateKeyFile {dir}/server.key
sizelimit unlimited
password-hash {{SSHA}}

database mdb
maxsize 1073741824
suffix "{suffix}"
rootdn "{root_dn}"
rootpw {root_password}
directory {dir}/data
index objectClass eq
index uid,cn,mail eq
index member,uniqueMember,memberUid eq
index entryUUID eq
access to attrs=userPassword
  by self write
  by anonymous auth
  by * none
access to *
  by users read
  by * none
"""


@dataclass
class Slapd:
    directory: Path
    port: int
    process: subprocess.Popen[bytes]
    ca_pem: str  # the CA that signed the server's certificate (for StartTLS / ldaps)
    suffix: str = SUFFIX
    root_dn: str = ROOT_DN
    root_password: str = ROOT_PASSWORD

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def ssha(password: str) -> str:
    """An `{SSHA}` userPassword value, as slapd itself stores one."""
    salt = os.urandom(8)
    digest = hashlib.sha1(password.encode() + salt).digest()  # noqa: S324 - slapd's scheme
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def organizational_units(*names: str, suffix: str = SUFFIX) -> str:
    top = suffix.split(",")[0].split("=")[1]
    out = [
        f"dn: {suffix}\nobjectClass: top\nobjectClass: dcObject\nobjectClass: organization\n"
        f"o: {top}\ndc: {top}\n"
    ]
    out += [f"dn: ou={n},{suffix}\nobjectClass: organizationalUnit\nou: {n}\n" for n in names]
    return "\n".join(out) + "\n"


def person(
    uid: str | None,
    *,
    cn: str | None = None,
    ou: str = "people",
    password: str | None = None,
    mail: str | None = None,
    given: str = "Given",
    sn: str = "Surname",
    extra: Iterable[str] = (),
    suffix: str = SUFFIX,
    posix: bool = True,
) -> str:
    """An inetOrgPerson (and posixAccount) entry `uid=<uid>,ou=<ou>,<suffix>` (or
    `cn=<cn>,…` for one without a uid, which is then no posixAccount)."""
    common = cn or f"{given} {sn}"
    rdn = f"uid={uid}" if uid is not None else f"cn={common}"
    posix = posix and uid is not None
    # slapadd wants all the values of an attribute together.
    lines = [f"dn: {rdn},ou={ou},{suffix}", "objectClass: inetOrgPerson"]
    if posix:
        lines.append("objectClass: posixAccount")
    if uid is not None:
        lines.append(f"uid: {uid}")
    lines += [f"cn: {common}", f"givenName: {given}", f"sn: {sn}"]
    if posix and uid is not None:
        lines += [
            f"uidNumber: {10000 + zlib.crc32(uid.encode()) % 50000}",
            "gidNumber: 10000",
            f"homeDirectory: /home/{uid}",
        ]
    lines.append(f"mail: {mail or (uid or 'nobody') + '@example.org'}")
    lines += list(extra)
    if password is not None:
        lines.append(f"userPassword: {ssha(password)}")
    return "\n".join(lines) + "\n\n"


def group(cn: str, members: Iterable[str], *, ou: str = "groups", suffix: str = SUFFIX) -> str:
    """A groupOfNames `cn=<cn>,ou=<ou>,<suffix>` whose `member`s are the DNs given."""
    lines = [f"dn: cn={cn},ou={ou},{suffix}", "objectClass: groupOfNames", f"cn: {cn}"]
    lines += [f"member: {m}" for m in members] or [f"member: cn=nobody,{suffix}"]
    return "\n".join(lines) + "\n\n"


def _certificates(directory: Path, names: list[x509.GeneralName] | None) -> str:
    ca_key = tlskit.key()
    ca = tlskit.cert("slapdkit test CA", ca_key)
    server_key = tlskit.key()
    if names is None:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    server = tlskit.cert("localhost", server_key, (ca, ca_key), names)
    ca_pem = ca.public_bytes(tlskit.PEM)
    tlskit.write(directory / "ca.pem", ca_pem)
    tlskit.write(directory / "server.pem", server.public_bytes(tlskit.PEM))
    tlskit.write(directory / "server.key", tlskit.pem_key(server_key), 0o600)
    return ca_pem.decode()


def _wait(port: int, process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"slapd exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError("slapd did not start listening")


def start(
    directory: Path,
    entries: str = "",
    *,
    suffix: str = SUFFIX,
    tls_names: list[x509.GeneralName] | None = None,
) -> Slapd:
    """Start slapd in `directory` (created), loaded with `entries` (LDIF; the suffix entry
    included: see `organizational_units`). Its certificate names `tls_names` (by default
    localhost and 127.0.0.1)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "data").mkdir(exist_ok=True)
    ca_pem = _certificates(directory, tls_names)
    conf = directory / "slapd.conf"
    conf.write_text(
        _CONF.format(
            schemas=SCHEMAS,
            modules=MODULES,
            dir=directory,
            suffix=suffix,
            root_dn=f"cn=admin,{suffix}",
            root_password=ROOT_PASSWORD,
        )
    )
    if entries:
        ldif = directory / "entries.ldif"
        ldif.write_text(entries)
        loaded = subprocess.run(
            [SLAPADD, "-q", "-f", str(conf), "-l", str(ldif)],
            capture_output=True,
            timeout=300,
            check=False,
        )
        if loaded.returncode:
            raise RuntimeError(f"slapadd failed: {loaded.stderr.decode(errors='replace')[-2000:]}")
    port = free_port()
    process = subprocess.Popen(
        [SLAPD, "-f", str(conf), "-h", f"ldap://127.0.0.1:{port}/", "-d", "0"],
        stdout=subprocess.DEVNULL,
        stderr=(directory / "slapd.log").open("wb"),
    )
    try:
        _wait(port, process)
    except RuntimeError:
        process.kill()
        process.wait(10)
        log = (directory / "slapd.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"slapd did not start: {log}") from None
    return Slapd(directory, port, process, ca_pem, suffix, f"cn=admin,{suffix}")


@contextlib.contextmanager
def running(
    directory: Path,
    entries: str = "",
    *,
    suffix: str = SUFFIX,
    tls_names: list[x509.GeneralName] | None = None,
) -> Iterator[Slapd]:
    server = start(directory, entries, suffix=suffix, tls_names=tls_names)
    try:
        yield server
    finally:
        server.stop()
