"""Round trips through the admin API: what a GET returned may be sent back.

For every writable resource under `/api/v3/` (taken from `resources.ALL`, so a new resource is
covered without being named here): a GET sent back unchanged by PUT (or PATCH where the resource
has no PUT) is 200 and changes nothing; its read-only fields, sent with other values (another pk,
a wrong type, a NUL byte), are dropped unread; a misspelt writable field is still 400. The
privilege-relevant read-only fields (a user's `is_superuser`, a token's `managed` and owner, a
device's `user`) cannot be set by sending them.
"""

from __future__ import annotations

import uuid
from typing import Any

from helpers import SECRET_KEY

from tessera.core import identity, policies, stages, wire
from tessera.core.api import resource, resources
from tessera.core.crypto import Keyring, webauthn
from tessera.core.identity import devices

API = Any
WRITABLE = [r for r in resources.ALL if r.request_model is not None]
POLICY_SETTINGS = {"expression": {"expression": "return True"}}
TAMPERED = {"tampered": ["\x00", 1]}  # wrong type and a NUL byte: validated, it would be a 400
EXPECTED_READ_ONLY = {
    "core/users": {
        "pk",
        "is_superuser",
        "groups_obj",
        "roles_obj",
        "uid",
        "uuid",
        "avatar",
        "last_updated",
        "password_change_date",
    },
    "core/groups": {"pk", "num_pk", "parents_obj", "users_obj", "children", "children_obj"},
    "core/tokens": {"pk", "user_obj"},
    "stages/identification": {"pk", "flow_set", "component", "meta_model_name", "verbose_name"},
    "policies/expression": {"pk", "component", "bound_to", "verbose_name_plural"},
    "flows/instances": {"pk", "stages", "policies", "background_url", "managed"},
    "stages/prompt/prompts": {"pk", "prompt_stages_obj"},
    "policies/bindings": {"pk", "policy_obj", "group_obj", "user_obj"},
    "authenticators/totp": {"pk", "user"},
}


async def _created(api: API, path: str, body: dict[str, Any], expect: int = 201) -> dict[str, Any]:
    status, obj = await api("POST", path, json=body)
    assert status == expect, (path, obj)
    return dict(obj)


async def _seed(api: API, db: Any) -> None:
    """At least one object of every writable resource (the bootstrap made users, groups, the
    admin token and the default flows, stages and stage bindings)."""
    app = await _created(api, "core/applications/", {"name": "Round trip", "slug": "round-trip"})
    await _created(api, "core/tokens/", {"identifier": "round-trip", "description": "rt"})
    await _created(api, "crypto/certificatekeypairs/generate/", {"common_name": "rt.example"}, 200)
    prompt = {"name": "rt-prompt", "field_key": "rt", "label": "RT", "type": "text"}
    prompt = await _created(api, "stages/prompt/prompts/", prompt)
    for kind in stages.KINDS:
        settings = {"fields": [prompt["pk"]]} if kind == "prompt" else {}
        await _created(api, f"{wire.flows.stage_path(kind)}/", {"name": f"rt-{kind}", **settings})
    for kind in policies.kinds.KINDS:
        body = {"name": f"rt-{kind}", **POLICY_SETTINGS.get(kind, {})}
        policy = await _created(api, f"policies/{kind}/", body)
    binding = {"target": app["pk"], "policy": policy["pk"], "order": 0}
    await _created(api, "policies/bindings/", binding)
    await _created(api, "stages/invitation/invitations/", {"name": "rt-invitation"})
    async with db.transaction() as tx:  # akadmin's own devices (the API caller's)
        admin = await identity.users.find_by_username(tx, "akadmin")
        assert admin is not None
        totp = await devices.create_totp(tx, Keyring(SECRET_KEY), admin["pk"], 6)
        await devices.confirm(tx, totp["pk"], "phone")
        static = await devices.create_static(tx, Keyring(SECRET_KEY), admin["pk"])
        await devices.confirm(tx, static["pk"], "codes")
        credential = webauthn.Registered(
            credential_id="rt-credential",
            public_key="pQECAyYgASFYIPublicKeyMaterialForTheTest",
            sign_count=0,
            aaguid="00000000-0000-0000-0000-000000000000",
            user_verified=True,
            device_type="single_device",
            backed_up=False,
        )
        assert await devices.create_webauthn(
            tx, Keyring(SECRET_KEY), admin["pk"], credential, "key"
        )


async def _one(api: API, r: resource.Resource) -> tuple[str, dict[str, Any]]:
    """The detail path and GET body of an object of `r`."""
    status, page = await api("GET", f"{r.path}/?page_size=100")
    assert status == 200 and page["results"], (r.path, page)
    obj = page["results"][-1]
    return f"{r.path}/{obj[r.lookup]}/", dict(obj)


async def _send_back(api: API, r: resource.Resource, detail: str, body: dict[str, Any]) -> Any:
    """PUT `body` (PATCH where the resource has no PUT); a key pair's PUT also needs its
    write-only `certificate_data`, which no GET returns (as in authentik)."""
    if r.path == "crypto/certificatekeypairs":
        _, pem = await api("GET", f"{detail}view_certificate/")
        body = {**body, "certificate_data": pem["data"]}
    return await api("PUT" if r.allow_put else "PATCH", detail, json=body)


async def test_every_resource_accepts_its_own_get_back_unchanged(
    api: API, bootstrapped: Any
) -> None:
    await _seed(api, bootstrapped)
    assert {"core/users", "stages/identification", "policies/bindings"} <= {
        r.path for r in WRITABLE
    }
    for r in WRITABLE:
        detail, before = await _one(api, r)
        status, sent = await _send_back(api, r, detail, before)
        assert status == 200, (r.path, sent)
        assert sent == before, r.path
        assert (await api("GET", detail)) == (200, before), r.path
    _, events = await api("GET", "events/events/?action=model_updated&page_size=100")
    assert len(events["results"]) == len(WRITABLE)
    assert all(e["context"]["diff"] == {} for e in events["results"])


async def test_read_only_fields_with_other_values_are_ignored(api: API, bootstrapped: Any) -> None:
    await _seed(api, bootstrapped)
    for r in WRITABLE:
        assert r.request_model is not None
        read_only = resource.read_only_fields(r.read_model, r.request_model)
        assert read_only >= EXPECTED_READ_ONLY.get(r.path, {"pk"}), r.path
        detail, before = await _one(api, r)
        tampered = {**before, **dict.fromkeys(read_only, TAMPERED)}
        status, sent = await _send_back(api, r, detail, tampered)
        assert status == 200, (r.path, sent)
        assert sent == before and (await api("GET", detail)) == (200, before), r.path
        status, patched = await api("PATCH", detail, json=dict.fromkeys(read_only, TAMPERED))
        assert status == 200 and patched == before, (r.path, patched)


async def test_another_objects_pk_in_the_body_changes_neither_object(api: API) -> None:
    _, one = await api("POST", "core/groups/", json={"name": "one"})
    _, two = await api("POST", "core/groups/", json={"name": "two"})
    status, sent = await api(
        "PUT", f"core/groups/{one['pk']}/", json={**one, "pk": two["pk"], "num_pk": two["num_pk"]}
    )
    assert status == 200 and sent == one
    assert (await api("GET", f"core/groups/{two['pk']}/")) == (200, two)


async def test_a_pk_sent_on_create_is_not_the_new_objects_pk(api: API) -> None:
    chosen = str(uuid.uuid4())
    status, group = await api("POST", "core/groups/", json={"name": "g", "pk": chosen})
    assert status == 201 and group["pk"] != chosen
    _, stage = await api("POST", "stages/identification/", json={"name": "id"})
    body = {**stage, "name": "copy", "pk": stage["pk"], "component": "ak-stage-password-form"}
    status, copy = await api("POST", "stages/identification/", json=body)
    assert status == 201 and copy["pk"] != stage["pk"]
    assert copy["component"] == "ak-stage-identification-form"
    assert (await api("GET", f"stages/identification/{stage['pk']}/")) == (200, stage)


async def test_is_superuser_sent_to_a_user_grants_nothing(
    api: API, make_user: Any, make_token: Any, client: Any
) -> None:
    user = await make_user("mallory")
    key = await make_token("mallory", expiring=False)
    status, sent = await api(
        "PUT", f"core/users/{user['pk']}/", json={**user, "is_superuser": True}
    )
    assert status == 200 and sent["is_superuser"] is False
    status, sent = await api("PATCH", f"core/users/{user['pk']}/", json={"is_superuser": True})
    assert status == 200 and sent["is_superuser"] is False
    response = await client.get("/api/v3/core/users/", headers={"Authorization": f"Bearer {key}"})
    assert response.status == 403


async def test_a_tokens_managed_and_owner_cannot_be_set_through_read_only_fields(
    api: API, make_user: Any
) -> None:
    other = await make_user("other")
    token = await _created(api, "core/tokens/", {"identifier": "mine"})
    body = {**token, "user_obj": {"pk": other["pk"], "username": "other", "name": ""}}
    status, sent = await api("PUT", "core/tokens/mine/", json=body)
    assert status == 200 and sent == token and sent["user"] != other["pk"]
    # `managed` is a field of authentik's request: a value other than the token's is refused.
    body = {**token, "managed": "goauthentik.io/token/takeover"}
    status, sent = await api("PUT", "core/tokens/mine/", json=body)
    assert status == 400 and "managed" in sent
    assert (await api("GET", "core/tokens/mine/")) == (200, token)


async def test_a_device_sent_back_with_another_user_stays_the_callers(
    api: API, make_user: Any, make_token: Any, bootstrapped: Any, client: Any
) -> None:
    owner = await make_user("owner")
    key = await make_token("owner", expiring=False)
    async with bootstrapped.transaction() as tx:
        totp = await devices.create_totp(tx, Keyring(SECRET_KEY), owner["pk"], 6)
        await devices.confirm(tx, totp["pk"], "phone")
    headers = {"Authorization": f"Bearer {key}"}
    path = f"authenticators/totp/{totp['num_pk']}/"
    status, device = await api("GET", path, headers=headers)
    assert status == 200
    status, sent = await api("PATCH", path, headers=headers, json={**device, "user": 1})
    assert status == 200 and sent == device and sent["user"]["pk"] == owner["pk"]
    _, seen = await api("GET", f"authenticators/admin/totp/{totp['num_pk']}/")
    assert seen["user"]["pk"] == owner["pk"]
    assert (await client.get(f"/api/v3/{path}")).status in {401, 403}


async def test_a_misspelt_writable_field_is_still_refused(api: API, bootstrapped: Any) -> None:
    await _seed(api, bootstrapped)
    for r in WRITABLE:
        detail, before = await _one(api, r)
        status, problem = await api("PATCH", detail, json={"nmae": "x"})
        assert (status, problem) == (400, {"nmae": ["Unexpected field."]}), r.path
        status, problem = await _send_back(api, r, detail, {**before, "nmae": "x"})
        assert (status, problem) == (400, {"nmae": ["Unexpected field."]}), r.path
        if r.allow_create:
            status, problem = await api("POST", f"{r.path}/", json={**before, "nmae": "x"})
            assert status == 400 and problem["nmae"] == ["Unexpected field."], r.path
        assert (await api("GET", detail)) == (200, before), r.path


async def test_a_read_only_name_of_another_resource_is_still_unexpected(api: API) -> None:
    # `kind` is read-only on stages and policies, `is_superuser` on users: elsewhere they are
    # unknown fields like any other.
    app = await _created(api, "core/applications/", {"name": "A", "slug": "a"})
    status, problem = await api("PATCH", f"core/applications/{app['slug']}/", json={"kind": "x"})
    assert (status, problem) == (400, {"kind": ["Unexpected field."]})
    await _created(api, "core/tokens/", {"identifier": "t"})
    status, problem = await api("PATCH", "core/tokens/t/", json={"is_superuser": True})
    assert (status, problem) == (400, {"is_superuser": ["Unexpected field."]})
