"""`tessera outpost ldap` against a real `tessera server`, driven by real clients: OpenLDAP's
`ldapsearch`, `ldapwhoami` and `ldappasswd` (Debian's ldap-utils) and the `ldap3` library.

One core (SQLite) with 2,000 users and a few groups written through the identity layer, two LDAP
providers (cached and direct modes) made through the admin API, and one outpost process serving
both. The searches are the ones Jellyfin, Nextcloud, Gitea and SSSD send (recorded below)."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ldap3
import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from helpers import (
    BOOTSTRAP_PASSWORD,
    BOOTSTRAP_TOKEN,
    SECRET_KEY,
    TESSERA,
    Server,
    base_env,
    free_port,
)

from tessera.core import config, crypto, identity, store, wire
from tessera.core.identity import devices

pytestmark = pytest.mark.slow
USERS = 2000
PASSWORD = "Ldap-e2e-Passw0rd!"
CACHED = "dc=cached,dc=example,dc=com"
DIRECT = "dc=direct,dc=example,dc=com"
POLICY = "dc=policy,dc=example,dc=com"  # its application lets only the group `ldap-allowed` in
STATIC_CODES = ["abcd1234", "wxyz6789"]
LDAP_TOOLS = ("ldapsearch", "ldapwhoami", "ldappasswd")

# The searches applications send, as their LDAP settings and documentation write them
# (`%s` / `{0}` / `%uid` filled with the user).
JELLYFIN_USERS = "(memberOf=cn=jellyfin-users,ou=groups,{base})"
JELLYFIN_LOGIN = "(&(objectClass=inetOrgPerson)(|(uid={u})(cn={u})(mail={u})(displayName={u})))"
NEXTCLOUD_LIST = "(&(|(objectclass=inetOrgPerson))(|(memberof=cn=nextcloud,ou=groups,{base})))"
NEXTCLOUD_LOGIN = (
    "(&(&(|(objectclass=inetOrgPerson))(|(memberof=cn=nextcloud,ou=groups,{base})))"
    "(|(uid={u})(|(mailPrimaryAddress={u})(mail={u}))))"
)
NEXTCLOUD_GROUPS = "(&(|(objectclass=groupOfNames)))"
GITEA_LOGIN = "(&(|(objectclass=user))(|(cn={u})(mail={u})))"
GITEA_ADMIN = "(memberOf=cn=gitea-admins,ou=groups,{base})"
SSSD_USER = "(&(uid={u})(objectclass=posixAccount)(uid=*)(&(uidNumber=*)(!(uidNumber=0))))"
SSSD_INITGROUPS = (
    "(&(member=cn={u},ou=users,{base})(objectClass=group)(cn=*)(&(gidNumber=*)(!(gidNumber=0))))"
)
SSSD_GROUP_BY_GID = "(&(gidNumber={gid})(objectClass=posixGroup)(cn=*))"


def have_tools() -> bool:
    return all(shutil.which(tool) for tool in LDAP_TOOLS)


@dataclass
class Deployment:
    core: Server
    port: int
    tls_port: int
    metrics_port: int
    process: subprocess.Popen[bytes]
    log: Path
    providers: dict[str, dict[str, Any]]

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps(self) -> str:
        return f"ldaps://127.0.0.1:{self.tls_port}"

    def output(self) -> str:
        return self.log.read_text()


def api(core: Server, method: str, path: str, body: Any = None) -> Any:
    status, answer = core.request(method, "/api/v3/" + path, BOOTSTRAP_TOKEN, body)
    assert status in (200, 201, 204), (method, path, status, answer)
    return answer


def user_dn(username: str, base: str) -> str:
    return f"cn={username},ou=users,{base}"


async def _seed(data_dir: Path) -> None:
    """2,000 users (user1..), and the groups the applications' filters name, written through the
    identity layer into the running core's store."""
    settings = config.load(data_dir=data_dir, secret_key=SECRET_KEY, outbound={"enabled": False})
    db = store.Store(settings)
    await db.open()
    try:
        async with db.transaction() as tx:
            pks = []
            for i in range(1, USERS + 1):
                row = await identity.users.create(
                    tx,
                    wire.core.UserRequest(
                        username=f"user{i}", name=f"User {i}", email=f"user{i}@example.com"
                    ),
                )
                pks.append(row["pk"])
            for name, members in (
                ("jellyfin-users", pks[:50]),
                ("nextcloud", pks[:30]),
                ("gitea-admins", pks[:3]),
            ):
                await identity.groups.create(tx, wire.core.GroupRequest(name=name, users=members))
    finally:
        await db.close()


async def _static_codes(data_dir: Path, user_pk: int, codes: list[str]) -> None:
    """A confirmed static MFA device for the user (written into the running core's store)."""
    settings = config.load(data_dir=data_dir, secret_key=SECRET_KEY, outbound={"enabled": False})
    db = store.Store(settings)
    await db.open()
    try:
        keyring = crypto.Keyring(SECRET_KEY)
        async with db.transaction() as tx:
            device = await devices.create_static(tx, keyring, user_pk)
            await devices.set_static_codes(tx, keyring, device, codes)
            await devices.confirm(tx, device["pk"])
    finally:
        await db.close()


def _provider(core: Server, name: str, base: str, mode: str) -> dict[str, Any]:
    flows = {
        slug: api(core, "GET", f"flows/instances/{slug}/")["pk"]
        for slug in ("default-authentication-flow", "default-invalidation-flow")
    }
    provider = api(
        core,
        "POST",
        "providers/ldap/",
        {
            "name": name,
            "authorization_flow": flows["default-authentication-flow"],
            "invalidation_flow": flows["default-invalidation-flow"],
            "base_dn": base,
            "search_mode": mode,
            "bind_mode": mode,
        },
    )
    api(
        core, "POST", "core/applications/", {"name": name, "slug": name, "provider": provider["pk"]}
    )
    return dict(provider)


def _user_with_password(core: Server, username: str, **fields: Any) -> dict[str, Any]:
    user = api(
        core, "POST", "core/users/", {"username": username, "name": username.title(), **fields}
    )
    api(core, "POST", f"core/users/{user['pk']}/set_password/", {"password": PASSWORD})
    return dict(user)


def _wait_for_port(
    port: int, process: subprocess.Popen[bytes], log: Path, timeout: float = 30
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"outpost exited {process.returncode}:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"outpost not listening in {timeout}s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    if not have_tools():
        pytest.fail("ldap-utils (ldapsearch, ldapwhoami, ldappasswd) are not installed")
    work = tmp_path_factory.mktemp("ldap-e2e")
    port = free_port()
    env = base_env(
        AUTHENTIK_SECRET_KEY=SECRET_KEY,
        AUTHENTIK_BOOTSTRAP_PASSWORD=BOOTSTRAP_PASSWORD,
        AUTHENTIK_BOOTSTRAP_TOKEN=BOOTSTRAP_TOKEN,
        AUTHENTIK_WEB__PUBLIC_URL=f"http://127.0.0.1:{port}",
        TESSERA_OUTBOUND__ENABLED="false",
    )
    core = Server(env, work, port=port)
    try:
        core.wait_ready()
        asyncio.run(_seed(work / "data"))
        providers = {
            "cached": _provider(core, f"ldap-cached-{uuid.uuid4().hex[:6]}", CACHED, "cached"),
            "direct": _provider(core, f"ldap-direct-{uuid.uuid4().hex[:6]}", DIRECT, "direct"),
            "policy": _provider(core, f"ldap-policy-{uuid.uuid4().hex[:6]}", POLICY, "direct"),
        }
        made = {
            username: _user_with_password(core, username, email=f"{username}@example.com")
            for username in ("alice", "bob", "carol", "dave", "erin", "mfa")
        }
        asyncio.run(_static_codes(work / "data", made["mfa"]["pk"], STATIC_CODES))
        allowed = api(
            core, "POST", "core/groups/", {"name": "ldap-allowed", "users": [made["alice"]["pk"]]}
        )
        app = api(core, "GET", f"core/applications/{providers['policy']['name']}/")
        api(
            core,
            "POST",
            "policies/bindings/",
            {"target": app["pk"], "group": allowed["pk"], "order": 0},
        )
        gone = _user_with_password(core, "gone")
        api(core, "PATCH", f"core/users/{gone['pk']}/", {"is_active": False})
        outpost = api(
            core,
            "POST",
            "outposts/instances/",
            {
                "name": "ldap-e2e",
                "type": "ldap",
                "providers": [p["pk"] for p in providers.values()],
                "config": {},
            },
        )
        token = api(core, "GET", f"core/tokens/{outpost['token_identifier']}/view_key/")["key"]
        ldap_port, tls_port, metrics_port = free_port(), free_port(), free_port()
        log = work / "outpost.log"
        process = subprocess.Popen(
            [TESSERA, "outpost", "ldap"],
            cwd=work,
            env=base_env(
                AUTHENTIK_HOST=core.url,
                AUTHENTIK_TOKEN=token,
                AUTHENTIK_LISTEN__LDAP=f"127.0.0.1:{ldap_port}",
                AUTHENTIK_LISTEN__LDAPS=f"127.0.0.1:{tls_port}",
                AUTHENTIK_LISTEN__METRICS=f"127.0.0.1:{metrics_port}",
                AUTHENTIK_STATE_DIR=str(work / "state"),
            ),
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_for_port(ldap_port, process, log)
            yield Deployment(core, ldap_port, tls_port, metrics_port, process, log, providers)
        finally:
            process.terminate()
            try:
                status = process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                raise
            # SIGTERM: the listeners close, sessions end, exit 0 (the core is away by now)
            assert status == 0, log.read_text()[-3000:]
    finally:
        core.stop()


def run(*argv: str, tls: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LDAPTLS_REQCERT": "never"} if tls else dict(os.environ)
    env.pop("LDAPRC", None)
    env["LDAPCONF"] = os.devnull  # not the machine's ldap.conf
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env, check=False)


def search(
    d: Deployment,
    who: str,
    base: str,
    flt: str,
    *attrs: str,
    extra: tuple[str, ...] = (),
    password: str = PASSWORD,
    url: str | None = None,
    tls: bool = False,
) -> subprocess.CompletedProcess[str]:
    """`ldapsearch` under `base`, bound as `who` of the provider `base` lies in."""
    root = CACHED if base.endswith(CACHED) else DIRECT
    argv = ["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", url or d.url]
    argv += ["-D", user_dn(who, root), "-w", password, "-b", base, *extra, flt, *attrs]
    done = run(*argv, tls=tls)
    assert done.returncode in (0, 4, 32, 50), done.stderr
    return done


def dns(output: str) -> list[str]:
    return [line[4:] for line in output.splitlines() if line.startswith("dn: ")]


def admin_search(
    d: Deployment, base: str, flt: str, *attrs: str, extra: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    return search(d, "akadmin", base, flt, *attrs, extra=extra, password=BOOTSTRAP_PASSWORD)


BASES = pytest.mark.parametrize("base", [CACHED, DIRECT], ids=["cached", "direct"])


# Binds ---------------------------------------------------------------------------------------


@BASES
def test_ldapwhoami(deployment: Deployment, base: str) -> None:
    done = run(
        "ldapwhoami", "-x", "-H", deployment.url, "-D", user_dn("alice", base), "-w", PASSWORD
    )
    assert done.returncode == 0, done.stderr + deployment.output()
    assert done.stdout.strip() == f"dn:{user_dn('alice', base)}"


@BASES
def test_bind_refusals(deployment: Deployment, base: str) -> None:
    wrong = run(
        "ldapwhoami", "-x", "-H", deployment.url, "-D", user_dn("alice", base), "-w", "nope"
    )
    assert wrong.returncode == 49, wrong.stderr
    inactive = run(
        "ldapwhoami", "-x", "-H", deployment.url, "-D", user_dn("gone", base), "-w", PASSWORD
    )
    assert inactive.returncode in (49, 50), inactive.stderr
    unknown = run(
        "ldapwhoami", "-x", "-H", deployment.url, "-D", user_dn("nobody", base), "-w", "x"
    )
    assert unknown.returncode == 49


@BASES
def test_mfa_code_after_the_password(deployment: Deployment, base: str) -> None:
    dn = user_dn("mfa", base)
    missing = run("ldapwhoami", "-x", "-H", deployment.url, "-D", dn, "-w", PASSWORD)
    assert missing.returncode == 49, missing.stderr
    code = STATIC_CODES[0] if base == CACHED else STATIC_CODES[1]
    done = run("ldapwhoami", "-x", "-H", deployment.url, "-D", dn, "-w", f"{PASSWORD};{code}")
    assert done.returncode == 0, done.stderr + deployment.output()
    again = run(
        "ldapwhoami",
        "-x",
        "-H",
        deployment.url,
        "-D",
        user_dn("mfa", POLICY),
        "-w",
        f"{PASSWORD};{code}",
    )
    assert again.returncode in (49, 50), again.stderr  # a static code is used up


def test_the_applications_policy_denies(deployment: Deployment) -> None:
    denied = run(
        "ldapwhoami", "-x", "-H", deployment.url, "-D", user_dn("bob", POLICY), "-w", PASSWORD
    )
    assert denied.returncode == 50, denied.stderr
    allowed = run(
        "ldapwhoami", "-x", "-H", deployment.url, "-D", user_dn("alice", POLICY), "-w", PASSWORD
    )
    assert allowed.returncode == 0, allowed.stderr


def test_anonymous_search_is_refused(deployment: Deployment) -> None:
    done = run("ldapsearch", "-x", "-LLL", "-H", deployment.url, "-b", CACHED, "(objectClass=*)")
    assert done.returncode == 50, done.stdout + done.stderr
    root = run(
        "ldapsearch",
        "-x",
        "-LLL",
        "-H",
        deployment.url,
        "-s",
        "base",
        "-b",
        "",
        "(objectClass=*)",
        "namingContexts",
    )
    assert root.returncode == 0
    for base in (CACHED, DIRECT, POLICY):
        assert f"namingContexts: {base}" in root.stdout


# Searches as applications send them ----------------------------------------------------------


@BASES
def test_jellyfin(deployment: Deployment, base: str) -> None:
    listed = admin_search(deployment, base, JELLYFIN_USERS.format(base=base), "uid", "mail")
    assert listed.returncode == 0, listed.stderr
    assert len(dns(listed.stdout)) == 50
    login = admin_search(
        deployment,
        f"ou=users,{base}",
        JELLYFIN_LOGIN.format(u="user7"),
        "uid",
        "displayName",
        "mail",
    )
    assert dns(login.stdout) == [user_dn("user7", base)]
    assert "displayName: User 7" in login.stdout and "mail: user7@example.com" in login.stdout


@BASES
def test_nextcloud(deployment: Deployment, base: str) -> None:
    listed = admin_search(
        deployment, base, NEXTCLOUD_LIST.format(base=base), "dn", extra=("-E", "pr=500/noprompt")
    )
    assert listed.returncode == 0, listed.stderr
    assert len(dns(listed.stdout)) == 30
    login = admin_search(
        deployment, base, NEXTCLOUD_LOGIN.format(base=base, u="user12@example.com"), "dn"
    )
    assert dns(login.stdout) == [user_dn("user12", base)]
    groups = admin_search(deployment, f"ou=groups,{base}", NEXTCLOUD_GROUPS, "cn", "member")
    assert f"dn: cn=nextcloud,ou=groups,{base}" in groups.stdout
    assert f"member: {user_dn('user30', base)}" in groups.stdout
    # Nextcloud then reads the user's own entry (base scope)
    entry = admin_search(
        deployment, user_dn("user12", base), "(objectclass=*)", "memberOf", extra=("-s", "base")
    )
    assert f"memberOf: cn=nextcloud,ou=groups,{base}" in entry.stdout


@BASES
def test_gitea(deployment: Deployment, base: str) -> None:
    login = admin_search(
        deployment, base, GITEA_LOGIN.format(u="alice"), "cn", "mail", "sn", "givenName"
    )
    assert dns(login.stdout) == [user_dn("alice", base)]
    assert "mail: alice@example.com" in login.stdout
    admins = admin_search(
        deployment, base, f"(&{GITEA_LOGIN.format(u='user2')}{GITEA_ADMIN.format(base=base)})", "dn"
    )
    assert dns(admins.stdout) == [user_dn("user2", base)]
    not_admin = admin_search(
        deployment, base, f"(&{GITEA_LOGIN.format(u='user9')}{GITEA_ADMIN.format(base=base)})", "dn"
    )
    assert dns(not_admin.stdout) == []


@BASES
def test_sssd(deployment: Deployment, base: str) -> None:
    user = admin_search(
        deployment,
        base,
        SSSD_USER.format(u="user5"),
        "uidNumber",
        "gidNumber",
        "homeDirectory",
        "loginShell",
    )
    assert dns(user.stdout) == [user_dn("user5", base)]
    fields = dict(line.split(": ", 1) for line in user.stdout.splitlines() if ": " in line)
    assert fields["homeDirectory"] == "/home/user5" and int(fields["uidNumber"]) >= 2000
    groups = admin_search(
        deployment, base, SSSD_INITGROUPS.format(u="user5", base=base), "cn", "gidNumber"
    )
    names = dns(groups.stdout)
    assert (
        f"cn=jellyfin-users,ou=groups,{base}" in names
        and f"cn=user5,ou=virtual-groups,{base}" in names
    )
    gid = next(
        line.split(": ")[1]
        for line in groups.stdout.splitlines()
        if line.startswith("gidNumber") and "virtual" not in line
    )
    by_gid = admin_search(deployment, base, SSSD_GROUP_BY_GID.format(gid=gid), "cn")
    assert len(dns(by_gid.stdout)) == 1


@BASES
def test_a_user_without_the_permission_sees_only_herself(deployment: Deployment, base: str) -> None:
    done = search(deployment, "alice", base, "(objectClass=user)", "cn")
    assert done.returncode == 0, done.stderr
    assert dns(done.stdout) == [user_dn("alice", base)]


@BASES
def test_paged_search_over_two_thousand_users(deployment: Deployment, base: str) -> None:
    done = admin_search(
        deployment, f"ou=users,{base}", "(objectClass=user)", "uid", extra=("-E", "pr=500/noprompt")
    )
    assert done.returncode == 0, done.stderr
    assert len(dns(done.stdout)) >= USERS + 5


def test_size_limit(deployment: Deployment) -> None:
    done = admin_search(deployment, CACHED, "(objectClass=user)", "dn", extra=("-z", "5"))
    assert done.returncode == 4, done.stderr
    assert len(dns(done.stdout)) == 5


@BASES
def test_start_tls_and_ldaps(deployment: Deployment, base: str) -> None:
    started = search(deployment, "alice", base, "(uid=alice)", "mail", extra=("-ZZ",), tls=True)
    assert started.returncode == 0, started.stderr
    assert "mail: alice@example.com" in started.stdout
    secure = search(
        deployment, "alice", base, "(uid=alice)", "mail", url=deployment.ldaps, tls=True
    )
    assert secure.returncode == 0, secure.stderr
    assert "mail: alice@example.com" in secure.stdout


def _served_name(port: int, server_name: str) -> str:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as sock,
        context.wrap_socket(sock, server_hostname=server_name) as tls_sock,
    ):
        der = tls_sock.getpeercert(binary_form=True)
    assert der is not None
    subject = x509.load_der_x509_certificate(der).subject
    return str(subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def test_the_providers_certificate_by_sni(deployment: Deployment) -> None:
    core = deployment.core
    name = "ldap.e2e.example.com"
    keypair = api(
        core,
        "POST",
        "crypto/certificatekeypairs/generate/",
        {"common_name": name, "subject_alt_name": name, "validity_days": 30},
    )
    provider = deployment.providers["direct"]
    api(
        core,
        "PATCH",
        f"providers/ldap/{provider['pk']}/",
        {"certificate": keypair["pk"], "tls_server_name": name},
    )
    try:
        assert _eventually(lambda: _served_name(deployment.tls_port, name) == name), (
            deployment.output()
        )
        assert _served_name(deployment.tls_port, "other.example.com") != name
        secure = search(
            deployment, "alice", DIRECT, "(uid=alice)", "mail", url=deployment.ldaps, tls=True
        )
        assert "mail: alice@example.com" in secure.stdout
    finally:
        api(
            core,
            "PATCH",
            f"providers/ldap/{provider['pk']}/",
            {"certificate": None, "tls_server_name": ""},
        )


# Password change -----------------------------------------------------------------------------


def test_ldappasswd(deployment: Deployment) -> None:
    new = "Changed-Passw0rd-42!"
    dn = user_dn("bob", DIRECT)
    done = run(
        "ldappasswd",
        "-x",
        "-H",
        deployment.url,
        "-D",
        dn,
        "-w",
        PASSWORD,
        "-a",
        PASSWORD,
        "-s",
        new,
    )
    assert done.returncode == 0, done.stderr + deployment.output()
    assert run("ldapwhoami", "-x", "-H", deployment.url, "-D", dn, "-w", new).returncode == 0
    assert run("ldapwhoami", "-x", "-H", deployment.url, "-D", dn, "-w", PASSWORD).returncode == 49
    # the cached provider asks the core again: the old password no longer binds there either
    cached = user_dn("bob", CACHED)
    assert run("ldapwhoami", "-x", "-H", deployment.url, "-D", cached, "-w", new).returncode == 0


def test_ldappasswd_for_someone_else_is_refused(deployment: Deployment) -> None:
    done = run(
        "ldappasswd",
        "-x",
        "-H",
        deployment.url,
        "-D",
        user_dn("carol", DIRECT),
        "-w",
        PASSWORD,
        "-s",
        "Another-Passw0rd-1",
        user_dn("alice", DIRECT),
    )
    assert done.returncode != 0 and "(50)" in done.stdout, done.stdout + done.stderr


# ldap3 ---------------------------------------------------------------------------------------


@BASES
def test_ldap3_client(deployment: Deployment, base: str) -> None:
    server = ldap3.Server("127.0.0.1", port=deployment.port, tls=ldap3.Tls(validate=ssl.CERT_NONE))
    conn = ldap3.Connection(server, user=user_dn("akadmin", base), password=BOOTSTRAP_PASSWORD)
    assert conn.bind(), conn.result
    assert conn.extend.standard.who_am_i() == f"dn:{user_dn('akadmin', base)}"
    entries = conn.extend.standard.paged_search(
        base, "(objectClass=user)", attributes=["uid"], paged_size=700, generator=False
    )
    assert len([e for e in entries if e["type"] == "searchResEntry"]) >= USERS
    conn.search(base, "(objectClass=user)", size_limit=3)
    assert conn.result["result"] == 4 and len(conn.entries) == 3
    conn.add(f"cn=x,ou=users,{base}", "inetOrgPerson", {"sn": "x"})
    assert conn.result["result"] == 53
    conn.unbind()


# Changes pushed by the core ------------------------------------------------------------------


def test_a_change_reaches_the_cached_directory(deployment: Deployment) -> None:
    users = api(deployment.core, "GET", "core/users/?username=dave")["results"]
    api(
        deployment.core, "PATCH", f"core/users/{users[0]['pk']}/", {"email": "dave@new.example.com"}
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = admin_search(deployment, CACHED, "(uid=dave)", "mail")
        if "mail: dave@new.example.com" in found.stdout:
            return
        time.sleep(0.2)
    raise AssertionError(f"not updated:\n{found.stdout}\n{deployment.output()}")


def test_deactivated_user_cached_bind_is_dropped(deployment: Deployment) -> None:
    dn = user_dn("carol", CACHED)
    assert run("ldapwhoami", "-x", "-H", deployment.url, "-D", dn, "-w", PASSWORD).returncode == 0
    users = api(deployment.core, "GET", "core/users/?username=carol")["results"]
    api(deployment.core, "PATCH", f"core/users/{users[0]['pk']}/", {"is_active": False})
    deadline = time.monotonic() + 10
    code = 0
    while time.monotonic() < deadline:
        code = run("ldapwhoami", "-x", "-H", deployment.url, "-D", dn, "-w", PASSWORD).returncode
        if code != 0:
            break
        time.sleep(0.2)
    assert code in (49, 50), deployment.output()
    api(deployment.core, "PATCH", f"core/users/{users[0]['pk']}/", {"is_active": True})


def test_metrics(deployment: Deployment) -> None:
    import urllib.request

    with urllib.request.urlopen(
        f"http://127.0.0.1:{deployment.metrics_port}/metrics", timeout=5
    ) as r:
        text = r.read().decode()
    assert "tessera_outpost_ldap_operations_total" in text
    assert "tessera_outpost_connection{" in text
    assert 'op="internal_error"' not in text
    log = deployment.output()
    assert "Traceback" not in log and "ldap_handler_failed" not in log, log[-3000:]
    assert PASSWORD not in log and BOOTSTRAP_PASSWORD not in log  # SECURITY: never logged


def _sessions_of(core: Server, username: str) -> list[dict[str, Any]]:
    page = api(core, "GET", f"core/authenticated_sessions/?user__username={username}")
    return list(page["results"])


def _eventually(check: Any, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def test_sessions_end_with_unbind_and_a_logout_at_the_core_closes_the_connection(
    deployment: Deployment,
) -> None:
    core = deployment.core
    # direct mode: the unbind after ldapwhoami ends the core session the bind opened
    done = run(
        "ldapwhoami", "-x", "-H", deployment.url, "-D", user_dn("erin", DIRECT), "-w", PASSWORD
    )
    assert done.returncode == 0, done.stderr
    assert _eventually(lambda: _sessions_of(core, "erin") == [])
    # cached mode: the session stays (binds share it); ending it at the core (SESSION_END)
    # closes the connection bound with it
    server = ldap3.Server("127.0.0.1", port=deployment.port)
    conn = ldap3.Connection(server, user=user_dn("erin", CACHED), password=PASSWORD)
    assert conn.bind()
    sessions = _sessions_of(core, "erin")
    assert len(sessions) == 1
    api(core, "DELETE", f"core/authenticated_sessions/{sessions[0]['uuid']}/")

    def closed() -> bool:
        try:
            return not conn.search(CACHED, "(uid=erin)") or conn.closed
        except ldap3.core.exceptions.LDAPException:
            return True

    assert _eventually(closed), deployment.output()


# Last: the core goes away ---------------------------------------------------------------------


def test_with_the_core_away_cached_mode_keeps_serving(deployment: Deployment) -> None:
    """Runs last in this module: it stops the core."""
    alice = user_dn("alice", CACHED)
    assert (
        run("ldapwhoami", "-x", "-H", deployment.url, "-D", alice, "-w", PASSWORD).returncode == 0
    )
    assert admin_search(deployment, CACHED, "(uid=user7)", "mail").returncode == 0
    deployment.core.stop()
    again = run("ldapwhoami", "-x", "-H", deployment.url, "-D", alice, "-w", PASSWORD)
    assert again.returncode == 0, again.stderr + deployment.output()
    found = admin_search(deployment, CACHED, "(uid=user7)", "mail")
    assert "mail: user7@example.com" in found.stdout, found.stderr
    direct = run(
        "ldapwhoami", "-x", "-H", deployment.url, "-D", user_dn("alice", DIRECT), "-w", PASSWORD
    )
    assert direct.returncode == 52, direct.stderr
    assert deployment.process.poll() is None
