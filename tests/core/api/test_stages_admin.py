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
        body = {"name": f"p-{kind}", **({"fields": []} if kind == "prompt" else {})}
        status, stage = await api("POST", f"{path}/", json=body)
        assert status == 201 and stage["meta_model_name"].endswith(f".{kind.replace('_', '')}stage")
        assert (await api("GET", f"stages/{kind}/"))[0] == 404 or kind == "user_login"
    status, schema = await api("GET", "schema/")
    assert status == 200
    assert "/stages/authenticator/totp/" in schema["paths"]
    assert "/stages/authenticator_totp/" not in schema["paths"]


async def test_every_registered_kind_has_endpoints(api: API) -> None:
    for kind in stages.KINDS:
        path = wire.flows.stage_path(kind)
        body = {"name": f"s-{kind}", **({"fields": []} if kind == "prompt" else {})}
        status, stage = await api("POST", f"{path}/", json=body)
        assert status == 201, (kind, stage)
        assert "kind" not in stage and stage["flow_set"] == []
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
    assert all(s["component"] == "ak-stage-user-login-form" for s in page["results"])
    assert "kind" not in page["results"][0]
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


async def _insert_stage(db: store.Store, kind: str, config: dict[str, Any]) -> str:
    async with db.transaction() as tx:
        row = await crud.insert(
            tx,
            "stages",
            {
                "pk": util.new_uuid(),
                "name": f"stored-{kind}",
                "kind": kind,
                "config": config,
                "created": util.now(),
            },
        )
    return str(row["pk"])


async def test_flow_set_is_the_flows_that_bind_the_stage(api: API) -> None:
    _, stage = await api("POST", "stages/deny/", json={"name": "shared"})
    assert stage["flow_set"] == []
    flows = []
    for slug in ("b-flow", "a-flow"):
        body = {"name": slug, "slug": slug, "title": slug, "designation": "authentication"}
        flows.append((await api("POST", "flows/instances/", json=body))[1])
    bindings = []
    for flow in flows:
        for order in (1, 2):  # bound twice in the same flow: listed once
            body = {"target": flow["pk"], "stage": stage["pk"], "order": order}
            bindings.append((await api("POST", "flows/bindings/", json=body))[1])
    _, got = await api("GET", f"stages/deny/{stage['pk']}/")
    assert [f["slug"] for f in got["flow_set"]] == ["a-flow", "b-flow"]
    first = got["flow_set"][0]
    assert first["pk"] == first["policybindingmodel_ptr_id"] == flows[1]["pk"]
    assert first["export_url"] == "/api/v3/flows/instances/a-flow/export/"
    assert first["background_url"] == wire.flows.DEFAULT_BACKGROUND
    for binding in bindings[2:]:
        assert (await api("DELETE", f"flows/bindings/{binding['pk']}/"))[0] == 204
    _, page = await api("GET", "stages/all/?name=shared")
    assert [f["slug"] for f in page["results"][0]["flow_set"]] == ["b-flow"]


async def test_older_settings_read_in_authentiks_vocabulary(api: API, db: store.Store) -> None:
    """Settings stored before migration 0009 (Tessera's backend names, flows by slug, a token
    validity in minutes, TOTP digits as a number) are shown as authentik's."""
    _, flow = await api("GET", "flows/instances/default-password-change/")
    password = await _insert_stage(
        db,
        "password",
        {"backends": ["tessera.core.auth.InbuiltBackend"], "configure_flow": flow["slug"]},
    )
    status, got = await api("GET", f"stages/password/{password}/")
    assert status == 200
    assert got["backends"] == ["authentik.core.auth.InbuiltBackend"]
    assert got["configure_flow"] == flow["pk"]
    redirect = await _insert_stage(db, "redirect", {"mode": "flow", "target_flow": "gone-flow"})
    assert (await api("GET", f"stages/redirect/{redirect}/"))[1]["target_flow"] is None
    email = await _insert_stage(db, "email", {"token_expiry": 45})
    assert (await api("GET", f"stages/email/{email}/"))[1]["token_expiry"] == "minutes=45"
    totp = await _insert_stage(db, "authenticator_totp", {"digits": 8})
    assert (await api("GET", f"stages/authenticator/totp/{totp}/"))[1]["digits"] == "8"
    # Sent back as read, they are taken (and stored in authentik's form).
    status, put = await api("PUT", f"stages/password/{password}/", json=got)
    assert status == 200 and put["backends"] == ["authentik.core.auth.InbuiltBackend"]


async def test_settings_name_existing_objects_by_pk(api: API) -> None:
    _, flow = await api("GET", "flows/instances/default-password-change/")
    for body, field in (
        ({"configure_flow": flow["slug"]}, "configure_flow"),
        ({"configure_flow": MISSING}, "configure_flow"),
    ):
        status, problem = await api("POST", "stages/password/", json={"name": "p", **body})
        assert status == 400 and field in problem, problem
    for path, body, field in (
        ("stages/identification", {"recovery_flow": MISSING}, "recovery_flow"),
        ("stages/identification", {"webauthn_stage": MISSING}, "webauthn_stage"),
        (
            "stages/authenticator/validate",
            {"configuration_stages": [MISSING]},
            "configuration_stages",
        ),
        ("stages/user_write", {"create_users_group": MISSING}, "create_users_group"),
        ("stages/prompt/stages", {"fields": [MISSING]}, "fields"),
        (
            "stages/prompt/stages",
            {"fields": [], "validation_policies": [MISSING]},
            "validation_policies",
        ),
    ):
        status, problem = await api("POST", f"{path}/", json={"name": "s", **body})
        assert status == 400 and field in problem, (path, problem)
    status, stage = await api(
        "POST", "stages/password/", json={"name": "p", "configure_flow": flow["pk"].upper()}
    )
    assert status == 201 and stage["configure_flow"] == flow["pk"]


async def test_authentik_settings_without_behaviour_take_only_their_empty_value(
    api: API,
) -> None:
    """Settings Tessera has no behaviour for take authentik's empty value (sent back as read)
    and refuse anything else, naming the field, rather than ignore it."""
    for path, field, value in (
        ("stages/dummy", "throw_error", True),
        ("stages/redirect", "keep_context", True),
        ("stages/user_login", "network_binding", "bind_asn"),
        ("stages/user_login", "geoip_binding", "bind_continent"),
        ("stages/identification", "sources", [MISSING]),
        ("stages/identification", "password_stage", MISSING),
        ("stages/authenticator/webauthn", "hints", ["hybrid"]),
        ("stages/authenticator/webauthn", "max_attempts", 3),
        ("stages/authenticator/validate", "webauthn_allowed_device_types", [MISSING]),
        ("stages/authenticator/validate", "totp_otp_throttling_factor", 1.5),
        ("stages/email", "password", "hunter2"),
        ("stages/password", "backends", ["tessera.core.auth.Nothing"]),
    ):
        status, problem = await api("POST", f"{path}/", json={"name": "s", field: value})
        assert status == 400 and {k.split(".")[0] for k in problem} == {field}, (path, problem)
    status, stage = await api("POST", "stages/email/", json={"name": "e", "password": ""})
    assert status == 201 and "password" not in stage
