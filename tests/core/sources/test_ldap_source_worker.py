"""`tessera worker` syncs an enabled LDAP source that is due, as soon as it starts (then every
two hours): the users appear in the core that the worker shares a database with."""

from __future__ import annotations

import time
from pathlib import Path

import slapdkit
from helpers import BOOTSTRAP_TOKEN, Server, pg_env, run_cli


def test_the_worker_syncs_due_sources(
    tmp_path: Path, fresh_database: str, slapd: slapdkit.Slapd
) -> None:
    env = pg_env(
        fresh_database,
        AUTHENTIK_BOOTSTRAP_TOKEN=BOOTSTRAP_TOKEN,
        AUTHENTIK_WORKER__EMBEDDED="false",
    )
    assert run_cli("migrate", env=env, cwd=tmp_path).returncode == 0
    server = Server(env, tmp_path)
    try:
        server.wait_ready()
        body = {
            "name": "Corp",
            "slug": "corp",
            "server_uri": slapd.url,
            "bind_cn": slapd.root_dn,
            "bind_password": slapd.root_password,
            "base_dn": slapdkit.SUFFIX,
            "additional_user_dn": "ou=people",
            "user_object_filter": "(objectClass=inetOrgPerson)",
            "object_uniqueness_field": "entryUUID",
            "sync_groups": False,
            "sync_users_password": False,
        }
        _, page = server.request(
            "GET", "/api/v3/propertymappings/source/ldap/?managed__isnull=false", BOOTSTRAP_TOKEN
        )
        uid = [m["pk"] for m in page["results"] if m["managed"].endswith("/openldap-uid")]
        body["user_property_mappings"] = uid
        status, created = server.request("POST", "/api/v3/sources/ldap/", BOOTSTRAP_TOKEN, body)
        assert status == 201, created
        worker = Server(env, tmp_path, command="worker")
        try:
            deadline = time.monotonic() + 30
            found: dict[str, object] = {}
            while time.monotonic() < deadline:
                _, found = server.request(
                    "GET", "/api/v3/sources/ldap/corp/sync/status/", BOOTSTRAP_TOKEN
                )
                if found["last_sync_status"]:
                    break
                time.sleep(0.2)
            assert found["last_sync_status"] == "warning", (found, worker.output())
            _, users = server.request("GET", "/api/v3/core/users/?username=alice", BOOTSTRAP_TOKEN)
            assert users["pagination"]["count"] == 1
        finally:
            worker.stop()
    finally:
        server.stop()
