"""`/api/v3/stages/<kind>/` (one resource per registered kind, settings validated by the kind's
`Config`) and `/api/v3/stages/all/`."""

from __future__ import annotations

from typing import Any

from tessera.core import stages, store, wire
from tessera.core.identity import util
from tessera.core.store import crud

API = Any
MISSING = "00000000-0000-4000-8000-000000000000"


async def test_authenticator_prompt_and_invitation_stages_live_at_authentiks_paths(
    api: API,
) -> None:
    for kind, path in (
        ("authenticator_totp", "stages/authenticator/totp"),
        ("authenticator_static", "stages/authenticator/static"),
        ("authenticator_validate", "stages/authenticator/validate"),
        ("prompt", "stages/prompt/stages"),
        ("invitation", "stages/invitation/stages"),
        ("user_login", "stages/user_login"),
    ):
        status, stage = await api("POST", f"{path}/", json={"name": f"p-{kind}"})
        assert status == 201 and stage["kind"] == kind, (path, stage)
        assert (await api("GET", f"stages/{kind}/"))[0] == 404 or kind == "user_login"
    status, schema = await api("GET", "schema/")
    assert status == 200
    assert "/stages/authenticator/totp/" in schema["paths"]
    assert "/stages/authenticator_totp/" not in schema["paths"]


async def test_every_registered_kind_has_endpoints(api: API) -> None:
    for kind in stages.KINDS:
        path = wire.flows.stage_path(kind)
        status, stage = await api("POST", f"{path}/", json={"name": f"s-{kind}"})
        assert status == 201, (kind, stage)
        assert stage["kind"] == kind
        assert stage["meta_model_name"] == f"authentik_stages_{kind}.{kind.replace('_', '')}stage"
        assert stage["component"] == f"ak-stage-{kind.replace('_', '-')}-form"
        assert stage["verbose_name"].endswith(" Stage")
        status, page = await api("GET", f"{path}/?name=s-{kind}")
        assert status == 200 and [s["pk"] for s in page["results"]] == [stage["pk"]]


async def test_identification_settings_crud(api: API) -> None:
    status, stage = await api(
        "POST", "stages/identification/", json={"name": "id", "user_fields": ["email"]}
    )
    assert status == 201, stage
    assert stage["user_fields"] == ["email"] and stage["pretend_user_exists"] is True
    assert stage["verbose_name"] == "Identification Stage"
    status, patched = await api(
        "PATCH", f"stages/identification/{stage['pk']}/", json={"show_matched_user": False}
    )
    assert status == 200
    assert patched["show_matched_user"] is False and patched["user_fields"] == ["email"]
    status, put = await api("PUT", f"stages/identification/{stage['pk']}/", json={"name": "id2"})
    assert status == 200 and put["name"] == "id2" and put["user_fields"] == ["username", "email"]
    status, _ = await api("DELETE", f"stages/identification/{stage['pk']}/")
    assert status == 204
    assert (await api("GET", f"stages/identification/{stage['pk']}/"))[0] == 404


async def test_stage_updates_are_audited_with_their_settings(api: API) -> None:
    _, stage = await api("POST", "stages/password/", json={"name": "pw"})
    await api("PATCH", f"stages/password/{stage['pk']}/", json={"failed_attempts_before_cancel": 3})
    _, page = await api("GET", "events/events/?action=model_updated")
    (event,) = page["results"]
    assert event["context"]["model"] == {
        "app": "authentik_stages_password",
        "model_name": "passwordstage",
        "pk": stage["pk"],
        "name": "pw",
    }
    assert event["context"]["diff"] == {
        "failed_attempts_before_cancel": {"previous_value": 5, "new_value": 3}
    }


async def test_bad_stage_input(api: API) -> None:
    for kind, body, field in (
        ("dummy", {"name": "x", "color": "red"}, "color"),
        ("identification", {"name": "x", "user_fields": ["phone"]}, "user_fields.0"),
        (
            "password",
            {"name": "x", "failed_attempts_before_cancel": 0},
            "failed_attempts_before_cancel",
        ),
        ("redirect", {"name": "x", "mode": "teleport"}, "mode"),
        ("deny", {}, "name"),
        ("deny", {"name": "default-authentication-login"}, "name"),
    ):
        status, problem = await api("POST", f"stages/{kind}/", json=body)
        assert status == 400 and field in problem, (kind, problem)


async def test_a_stage_is_only_visible_under_its_own_kind(api: API) -> None:
    _, stage = await api("POST", "stages/dummy/", json={"name": "d"})
    assert (await api("GET", f"stages/deny/{stage['pk']}/"))[0] == 404
    assert (await api("PATCH", f"stages/deny/{stage['pk']}/", json={"name": "e"}))[0] == 404
    assert (await api("DELETE", f"stages/deny/{stage['pk']}/"))[0] == 404
    _, page = await api("GET", "stages/deny/?page_size=100")
    assert stage["pk"] not in {s["pk"] for s in page["results"]}


async def test_all_stages_is_a_read_only_listing(api: API) -> None:
    status, page = await api("GET", "stages/all/?kind=user_login&ordering=-name")
    assert status == 200
    names = [s["name"] for s in page["results"]]
    assert "default-authentication-login" in names and names == sorted(names, reverse=True)
    assert all(s["kind"] == "user_login" for s in page["results"])
    assert (await api("POST", "stages/all/", json={"name": "x"}))[0] == 405
    status, one = await api("GET", f"stages/all/{page['results'][0]['pk']}/")
    assert status == 200 and one["verbose_name"] == "User Login Stage"


async def test_deleting_a_stage_removes_its_bindings(api: API) -> None:
    _, flow = await api("GET", "flows/instances/default-invalidation-flow/")
    (stage_pk,) = flow["stages"]
    _, page = await api("GET", f"flows/bindings/?stage={stage_pk}")
    (binding,) = page["results"]
    _, policy = await api("POST", "policies/dummy/", json={"name": "p"})
    status, _ = await api(
        "POST",
        "policies/bindings/",
        json={"target": binding["pk"], "policy": policy["pk"], "order": 0},
    )
    assert status == 201
    assert (await api("DELETE", f"stages/user_logout/{stage_pk}/"))[0] == 204
    assert (await api("GET", f"flows/bindings/{binding['pk']}/"))[0] == 404
    _, flow = await api("GET", "flows/instances/default-invalidation-flow/")
    assert flow["stages"] == []
    _, page = await api("GET", f"policies/bindings/?target={binding['pk']}")
    assert page["results"] == []


async def test_unknown_kind_and_lookup(api: API) -> None:
    assert (await api("GET", "stages/teleport/"))[0] == 404
    assert (await api("GET", f"stages/dummy/{MISSING}/"))[0] == 404
    assert (await api("GET", "stages/dummy/not-a-uuid/"))[0] == 404


async def test_settings_a_kind_no_longer_accepts_are_shown_not_fatal(
    api: API, db: store.Store
) -> None:
    async with db.transaction() as tx:
        row = await crud.insert(
            tx,
            "stages",
            {
                "pk": util.new_uuid(),
                "name": "old",
                "kind": "password",
                "config": {"failed_attempts_before_cancel": 0, "retired_setting": True},
                "created": util.now(),
            },
        )
    status, stage = await api("GET", f"stages/password/{row['pk']}/")
    assert status == 200 and stage["failed_attempts_before_cancel"] == 0
    assert "retired_setting" not in stage
    status, problem = await api("PATCH", f"stages/password/{row['pk']}/", json={"name": "new"})
    assert status == 400 and "failed_attempts_before_cancel" in problem
    status, fixed = await api(
        "PATCH",
        f"stages/password/{row['pk']}/",
        json={"name": "new", "failed_attempts_before_cancel": 2},
    )
    assert status == 200 and fixed["allow_show_password"] is False


async def test_every_kind_is_in_the_schema(client: Any) -> None:
    document = await (await client.get("/api/v3/schema/")).json()
    for kind in stages.KINDS:
        assert f"/{wire.flows.stage_path(kind)}/{{pk}}/" in document["paths"], kind
    schemas = document["components"]["schemas"]
    assert schemas["IdentificationStageRequest"]["additionalProperties"] is False
    assert "user_fields" in schemas["IdentificationStage"]["properties"]
    assert "required" not in schemas["PatchedIdentificationStageRequest"]


async def test_delete_through_stages_all_and_policies_all(api: API) -> None:
    _, stage = await api("POST", "stages/dummy/", json={"name": "gone-stage"})
    assert (await api("DELETE", f"stages/all/{stage['pk']}/"))[0] == 204
    assert (await api("GET", f"stages/dummy/{stage['pk']}/"))[0] == 404
    assert (await api("DELETE", f"stages/all/{stage['pk']}/"))[0] == 404
    status, policy = await api("POST", "policies/dummy/", json={"name": "gone-policy"})
    assert status == 201, policy
    assert (await api("DELETE", f"policies/all/{policy['pk']}/"))[0] == 204
    assert (await api("GET", f"policies/all/{policy['pk']}/"))[0] == 404
    # read-only otherwise: no PATCH or PUT there
    _, other = await api("POST", "stages/dummy/", json={"name": "kept"})
    assert (await api("PATCH", f"stages/all/{other['pk']}/", json={"name": "x"}))[0] == 405
    status, events = await api("GET", "events/events/?action=model_deleted")
    names = [e["context"]["model"]["name"] for e in events["results"]]
    assert "gone-stage" in names and "gone-policy" in names
