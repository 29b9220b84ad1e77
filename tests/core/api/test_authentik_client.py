"""authentik's generated API client against Tessera: every resource, every operation, every shape.

`authentik-client` (from the lock, at the authentik release Tessera follows) is what scripts, MCP
servers and sync tools use. Two checks:

- the OpenAPI document's shapes against the client's models, per resource (`akclientkit`), with
  the differences printed by operation;
- the contract table (`akcontract`): each resource listed, retrieved, created, updated, partially
  updated and deleted through the client, the objects round tripping. A collection path of the
  document without a case fails `test_every_resource_is_in_the_contract_table`, naming it.
"""

from __future__ import annotations

from typing import Any

import akclientkit
import akcontract
import pytest
from akcontract import apps as app_cases
from akcontract import core as core_cases
from akcontract import flows as flow_cases
from akcontract import ldap as ldap_cases
from akcontract import outposts as outpost_cases
from akcontract import policies as policy_cases
from akcontract import saml as saml_cases
from akcontract import sources as source_cases
from authentik_client import exceptions
from helpers import BOOTSTRAP_TOKEN

from tessera.core import app

CASES = [
    *core_cases.CASES,
    *app_cases.CASES,
    *flow_cases.CASES,
    *policy_cases.CASES,
    *outpost_cases.CASES,
    *saml_cases.CASES,
    *ldap_cases.CASES,
    *source_cases.CASES,
]
BY_PATH = {case.path: case for case in CASES}
DOCUMENT = app.schema_document()
# Operations Tessera serves that authentik's API has not, with the reason.
TESSERA_ONLY = {
    "/stages/initial_setup/": "the first-run stage that sets akadmin's password (Tessera's own)",
    "/providers/ldap/{pk}/search_access/": (
        "who holds search_full_directory on an LDAP provider: authentik grants it through RBAC "
        "roles, which Tessera has not (docs/decisions/2026-12-06-ldap-search-access.md)"
    ),
    **{
        f"/outposts/ldap/{{pk}}/{call}/": "the LDAP outpost's one-call bind, directory and search"
        for call in ("bind", "unbind", "directory", "search", "password")
    },
    "POST /sources/ldap/{slug}/sync/": (
        "start an LDAP source's sync by hand (authentik starts one through its tasks API)"
    ),
}


def _collections() -> list[str]:
    """The document's resources: collection paths that have a detail path beside them."""
    paths = DOCUMENT["paths"]
    return sorted(
        p[1:-1]
        for p in paths
        if "{" not in p
        and any(q.startswith(p + "{") and q.count("/") == p.count("/") + 1 for q in paths)
    )


def _tessera_only(key: str) -> bool:
    """An operation of TESSERA_ONLY: named whole ("POST /path/"), or under a path prefix."""
    return key in TESSERA_ONLY or any(
        key.split(" ", 1)[1].startswith(prefix) for prefix in TESSERA_ONLY if " " not in prefix
    )


# Where authentik's own server breaks its schema and Tessera tells the truth instead:
# (path prefix, difference) -> why. Each entry is one line of the differences report.
AUTHENTIK_SCHEMA_GAPS = {
    ("/stages/invitation/invitations/", "flow_obj: may be null, which the client refuses"): (
        "an invitation may be bound to no flow (usable in any flow with an invitation stage); "
        "authentik then sends flow_obj null too, although its schema requires an object"
    ),
}
# Fields Tessera takes beyond authentik's, on purpose: (path prefix, difference) -> why. A client
# that does not send them gets authentik's behaviour.
TESSERA_EXTENSIONS = {
    (
        "/flows/executor/",
        "request<ak-stage-identification>: field 'remember_me' is not authentik's",
    ): (
        "the identification page's 'Remember me' answers the user_login stage's question early "
        "(see ARCHITECTURE.md, Remember me); authentik keeps its toggle in the browser"
    ),
    ("/sources/ldap/", "response: field 'last_sync' is not authentik's"): (
        "an LDAP source's sync status carries the last run's counts and skipped entries; "
        "authentik keeps them in its tasks API"
    ),
}


def _gap(key: str, line: str) -> bool:
    path = key.split(" ", 1)[1]
    known = {**AUTHENTIK_SCHEMA_GAPS, **TESSERA_EXTENSIONS}
    return any(path.startswith(p) and line.endswith(d) for p, d in known)


DIFFERENCES = {
    k: [line for line in v if not _gap(k, line)]
    for k, v in akclientkit.differences(DOCUMENT).items()
    if not _tessera_only(k)
}


def _owner(key: str) -> str:
    """The resource an operation belongs to: the longest collection path its path starts with."""
    path = key.split(" ", 1)[1]
    owners = [c for c in _collections() if path.startswith(f"/{c}/")]
    return max(owners, key=len) if owners else ""


def test_every_resource_is_in_the_contract_table() -> None:
    missing = [c for c in _collections() if c not in BY_PATH and f"/{c}/" not in TESSERA_ONLY]
    assert not missing, f"resources without a case in tests/akcontract: {missing}"
    stale = [c.path for c in CASES if c.path not in _collections()]
    assert not stale, f"cases for resources Tessera does not serve: {stale}"


@pytest.mark.parametrize("collection", _collections())
def test_shapes_match_the_client_models(collection: str) -> None:
    lines = [
        f"{key}: {line}"
        for key, found in DIFFERENCES.items()
        if _owner(key) == collection
        for line in found
    ]
    assert not lines, "\n" + "\n".join(lines)


def _others(executor: bool) -> list[str]:
    return [
        f"{key}: {line}"
        for key, found in DIFFERENCES.items()
        if not _owner(key) and key.split(" ", 1)[1].startswith("/flows/executor/") == executor
        for line in found
    ]


def test_other_operations_match_the_client_models() -> None:
    lines = _others(executor=False)
    assert not lines, "\n" + "\n".join(lines)


def test_flow_executor_matches_the_client_models() -> None:
    """Every challenge Tessera answers with and every answer it reads, variant by variant."""
    lines = _others(executor=True)
    assert not lines, "\n" + "\n".join(lines)


def test_flow_executor_reads_an_answer_to_every_challenge_it_asks() -> None:
    """Each challenge that waits for an answer (all but the flow's ends) has its answer model in
    the document, under the client's name for it."""
    schemas = DOCUMENT["components"]["schemas"]
    asked = {
        ref.rsplit("/", 1)[-1]
        for component, ref in schemas["ChallengeTypes"]["discriminator"]["mapping"].items()
        if component not in ("xak-flow-redirect", "ak-stage-access-denied", "ak-stage-flow-error")
    }
    answered = {
        ref.rsplit("/", 1)[-1].removesuffix("ResponseRequest")
        for ref in schemas["FlowChallengeResponseRequest"]["discriminator"]["mapping"].values()
    }
    assert asked == answered


@pytest.fixture
async def driver(client: Any) -> akclientkit.Driver:
    return akclientkit.Driver(str(client.make_url("/")), BOOTSTRAP_TOKEN)


def _served(path: str, detail: bool) -> set[str]:
    key = f"/{path}/" + ("{" if detail else "")
    for p, methods in DOCUMENT["paths"].items():
        if (p.startswith(key) and p.count("/") == path.count("/") + 3) if detail else p == key:
            return set(methods)
    return set()


def _echoes(sent: dict[str, Any], got: Any, case: akcontract.Case, model: Any) -> None:
    """Every field sent comes back as sent (in the client's own serialization)."""
    sent_dict = model.model_validate(sent).to_dict()  # the fields sent, as the driver sends them
    got_dict = got.to_dict()
    for name, value in sent_dict.items():
        if name in case.write_only or name not in got_dict:
            continue
        assert got_dict[name] == value, (case.path, name, got_dict[name], value)


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_round_trip_through_the_client(
    case: akcontract.Case, driver: akclientkit.Driver, api: Any, bootstrapped: Any
) -> None:
    setup = akcontract.Setup(api, store=bootstrapped)
    collection, detail = _served(case.path, False), _served(case.path, True)
    assert "get" in collection and "get" in detail
    body: dict[str, Any] = {}
    if case.body is not None:
        assert "post" in collection, f"{case.path}: a create body for a resource without create"
        body = await case.body(setup)
        create = driver.method("POST", case.path, detail=False)
        created = await driver.call("POST", case.path, body=body)
        _echoes(body, created, case, akclientkit.request_parameter(create)[1])
        key = getattr(created, case.lookup)
    else:
        assert "post" not in collection, f"{case.path}: Tessera serves create; give the case a body"
        assert case.existing is not None, f"{case.path}: a case needs a body or an existing object"
        key = await case.existing(setup)
    got = await driver.call("GET", case.path, lookup=key)
    assert getattr(got, case.lookup) == key
    page = await driver.call("GET", case.path, page_size=100)
    assert page.pagination.count >= 1
    if "put" in detail:
        full = {**body, **case.change}
        put = driver.method("PUT", case.path, detail=True)
        updated = await driver.call("PUT", case.path, lookup=key, body=full)
        _echoes(full, updated, case, akclientkit.request_parameter(put)[1])
    if "patch" in detail:
        patch = driver.method("PATCH", case.path, detail=True)
        patched = await driver.call("PATCH", case.path, lookup=key, body=case.patch)
        _echoes(case.patch, patched, case, akclientkit.request_parameter(patch)[1])
    if "delete" in detail:
        await driver.call("DELETE", case.path, lookup=key)
        with pytest.raises(exceptions.NotFoundException):
            await driver.call("GET", case.path, lookup=key)
