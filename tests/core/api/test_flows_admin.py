"""`/api/v3/flows/instances/` and `/api/v3/flows/bindings/`: authentik's fields, lookups by pk or
slug, references that must exist, and bindings that really change what the executor does."""

from __future__ import annotations

from typing import Any

API = Any
FLOW = {"name": "Test", "slug": "test-flow", "title": "Test flow", "designation": "authentication"}


async def _stage(api: API, kind: str, name: str, **settings: Any) -> dict[str, Any]:
    status, body = await api("POST", f"stages/{kind}/", json={"name": name, **settings})
    assert status == 201, body
    return dict(body)


async def test_flow_crud_by_slug_and_pk(api: API) -> None:
    status, flow = await api("POST", "flows/instances/", json=FLOW)
    assert status == 201, flow
    assert flow["authentication"] == "none" and flow["policy_engine_mode"] == "any"
    assert flow["denied_action"] == "message_continue" and flow["layout"] == "stacked"
    assert flow["compatibility_mode"] is False and flow["stages"] == [] and flow["managed"] is None
    status, by_slug = await api("GET", "flows/instances/test-flow/")
    assert status == 200 and by_slug["pk"] == flow["pk"]
    status, by_pk = await api("GET", f"flows/instances/{flow['pk']}/")
    assert status == 200 and by_pk == by_slug
    status, patched = await api(
        "PATCH", "flows/instances/test-flow/", json={"layout": "sidebar_left", "title": "New"}
    )
    assert status == 200 and patched["layout"] == "sidebar_left" and patched["title"] == "New"
    assert patched["designation"] == "authentication"
    status, put = await api("PUT", f"flows/instances/{flow['pk']}/", json={**FLOW, "slug": "moved"})
    assert status == 200 and put["slug"] == "moved" and put["layout"] == "stacked"
    status, _ = await api("DELETE", "flows/instances/moved/")
    assert status == 204
    status, _ = await api("GET", "flows/instances/moved/")
    assert status == 404


async def test_flow_writes_are_audited(api: API) -> None:
    await api("POST", "flows/instances/", json=FLOW)
    await api("PATCH", "flows/instances/test-flow/", json={"title": "Changed"})
    status, page = await api("GET", "events/events/?action=model_updated")
    assert status == 200
    (event,) = [e for e in page["results"] if e["context"]["model"]["model_name"] == "flow"]
    assert event["context"]["model"]["app"] == "authentik_flows"
    assert event["context"]["diff"]["title"]["new_value"] == "Changed"


async def test_default_flow_lists_its_stages_in_order(api: API) -> None:
    status, flow = await api("GET", "flows/instances/default-authentication-flow/")
    assert status == 200
    assert flow["managed"] == "goauthentik.io/flows/default-authentication-flow"
    status, stages = await api("GET", "stages/all/?search=default-authentication")
    by_pk = {s["pk"]: s["name"] for s in stages["results"]}
    assert [by_pk[pk] for pk in flow["stages"]] == [
        "default-authentication-identification",
        "default-authentication-password",
        "default-authentication-mfa-validation",
        "default-authentication-login",
    ]
    status, page = await api("GET", f"flows/bindings/?target={flow['pk']}&ordering=order")
    assert [b["order"] for b in page["results"]] == [10, 20, 30, 100]


async def test_flow_filters_search_and_ordering(api: API) -> None:
    status, page = await api("GET", "flows/instances/?designation=invalidation")
    assert status == 200
    assert [f["slug"] for f in page["results"]] == ["default-invalidation-flow"]
    status, page = await api("GET", "flows/instances/?search=RECOVERY")
    assert [f["slug"] for f in page["results"]] == ["default-recovery-flow"]
    status, page = await api("GET", "flows/instances/?ordering=-slug&page_size=100")
    slugs = [f["slug"] for f in page["results"]]
    assert slugs == sorted(slugs, reverse=True)


async def test_flow_bad_input(api: API) -> None:
    for body, field in (
        ({**FLOW, "color": "red"}, "color"),
        ({**FLOW, "designation": "login"}, "designation"),
        ({**FLOW, "authentication": "require_nothing"}, "authentication"),
        ({**FLOW, "layout": "fancy"}, "layout"),
        ({**FLOW, "denied_action": "shrug"}, "denied_action"),
        ({**FLOW, "slug": "no spaces"}, "slug"),
        ({k: v for k, v in FLOW.items() if k != "designation"}, "designation"),
        ({**FLOW, "slug": "default-authentication-flow"}, "slug"),
    ):
        status, problem = await api("POST", "flows/instances/", json=body)
        assert status == 400 and field in problem, (body, problem)
    status, problem = await api(
        "PATCH", "flows/instances/default-invalidation-flow/", json={"x": 1}
    )
    assert status == 400 and "x" in problem


async def test_binding_crud_with_stage_obj(api: API) -> None:
    _, flow = await api("POST", "flows/instances/", json=FLOW)
    stage = await _stage(api, "dummy", "a-dummy")
    body = {"target": flow["pk"], "stage": stage["pk"], "order": 10}
    status, binding = await api("POST", "flows/bindings/", json=body)
    assert status == 201, binding
    assert binding["evaluate_on_plan"] is False and binding["re_evaluate_policies"] is True
    assert binding["invalid_response_action"] == "retry" and binding["policy_engine_mode"] == "any"
    assert binding["stage_obj"]["name"] == "a-dummy"
    assert binding["stage_obj"]["component"] == "ak-stage-dummy-form"
    assert binding["policybindingmodel_ptr_id"] == binding["pk"]
    # The stage's flow_set: the flow that binds it, as authentik's FlowSet.
    assert [f["slug"] for f in binding["stage_obj"]["flow_set"]] == [flow["slug"]]
    assert binding["stage_obj"]["flow_set"][0]["pk"] == flow["pk"]
    status, page = await api("GET", f"flows/bindings/?target={flow['pk']}")
    assert status == 200 and [b["pk"] for b in page["results"]] == [binding["pk"]]
    status, page = await api("GET", f"flows/bindings/?stage={stage['pk']}&order=11")
    assert status == 200 and page["results"] == []
    status, patched = await api(
        "PATCH", f"flows/bindings/{binding['pk']}/", json={"invalid_response_action": "restart"}
    )
    assert status == 200 and patched["invalid_response_action"] == "restart"
    _, flow = await api("GET", "flows/instances/test-flow/")
    assert flow["stages"] == [stage["pk"]]
    status, _ = await api("DELETE", f"flows/bindings/{binding['pk']}/")
    assert status == 204
    _, flow = await api("GET", "flows/instances/test-flow/")
    assert flow["stages"] == []


async def test_binding_dangling_references_and_duplicates_are_400(api: API) -> None:
    _, flow = await api("POST", "flows/instances/", json=FLOW)
    stage = await _stage(api, "dummy", "a-dummy")
    missing = "00000000-0000-4000-8000-000000000000"
    status, problem = await api(
        "POST", "flows/bindings/", json={"target": missing, "stage": stage["pk"], "order": 0}
    )
    assert status == 400 and "target" in problem
    status, problem = await api(
        "POST", "flows/bindings/", json={"target": flow["pk"], "stage": missing, "order": 0}
    )
    assert status == 400 and "stage" in problem
    body = {"target": flow["pk"], "stage": stage["pk"], "order": 0}
    assert (await api("POST", "flows/bindings/", json=body))[0] == 201
    status, problem = await api("POST", "flows/bindings/", json=body)
    assert status == 400
    assert problem == {
        "non_field_errors": ["The fields target, stage, order must make a unique set."]
    }
    for bad in ({"order": 2**31}, {"invalid_response_action": "explode"}, {"extra": 1}):
        status, problem = await api("POST", "flows/bindings/", json={**body, **bad})
        assert status == 400 and next(iter(bad)) in problem, problem
    status, problem = await api("GET", "flows/bindings/?order=99999999999")
    assert status == 400 and "order" in problem


async def test_deleting_a_flow_removes_its_bindings_and_their_policy_bindings(api: API) -> None:
    _, flow = await api("POST", "flows/instances/", json=FLOW)
    stage = await _stage(api, "dummy", "a-dummy")
    body = {"target": flow["pk"], "stage": stage["pk"], "order": 0}
    _, binding = await api("POST", "flows/bindings/", json=body)
    _, policy = await api("POST", "policies/dummy/", json={"name": "p", "result": True})
    for target in (flow["pk"], binding["pk"]):
        status, _ = await api(
            "POST",
            "policies/bindings/",
            json={"target": target, "policy": policy["pk"], "order": 0},
        )
        assert status == 201
    assert (await api("DELETE", "flows/instances/test-flow/"))[0] == 204
    assert (await api("GET", f"flows/bindings/{binding['pk']}/"))[0] == 404
    _, page = await api("GET", f"policies/bindings/?policy={policy['pk']}")
    assert page["results"] == []
    assert (await api("GET", f"stages/all/{stage['pk']}/"))[0] == 200  # stages outlive flows


async def test_a_deny_stage_bound_through_the_api_denies_the_login(client: Any, api: API) -> None:
    deny = await _stage(api, "deny", "closed", deny_message="Closed for maintenance.")
    _, flow = await api("GET", "flows/instances/default-authentication-flow/")
    status, _ = await api(
        "POST", "flows/bindings/", json={"target": flow["pk"], "stage": deny["pk"], "order": 5}
    )
    assert status == 201
    body = await (await client.get("/api/v3/flows/executor/default-authentication-flow/")).json()
    assert body["component"] == "ak-stage-access-denied"
    assert body["error_message"] == "Closed for maintenance."


async def test_flow_read_only_fields_as_authentik(api: API) -> None:
    status, flow = await api("GET", "flows/instances/default-authentication-flow/")
    assert status == 200
    assert flow["policybindingmodel_ptr_id"] == flow["pk"]
    assert flow["export_url"] == "/api/v3/flows/instances/default-authentication-flow/export/"
    assert flow["background"] is None and flow["cache_count"] == 0
    assert flow["background_url"] == "/static/dist/assets/images/flow_background.jpg"
    assert flow["background_themed_urls"] is None
    # Read-only fields are ignored in requests, as DRF does; unknown ones are still refused.
    status, patched = await api(
        "PATCH",
        "flows/instances/default-authentication-flow/",
        json={"background_url": "x", "cache_count": 3},
    )
    assert status == 200 and patched == flow
    # No background image of a flow's own: authentik's empty values only.
    for empty in (None, ""):
        status, _ = await api(
            "PATCH", "flows/instances/default-authentication-flow/", json={"background": empty}
        )
        assert status == 200
    status, problem = await api(
        "PATCH", "flows/instances/default-authentication-flow/", json={"background": "/b.jpg"}
    )
    assert status == 400 and "background" in problem
    status, _ = await api(
        "PATCH", "flows/instances/default-authentication-flow/", json={"meta_modelname": "x"}
    )
    assert status == 400


async def test_export_is_a_blueprint_of_the_flow(
    client: Any, api: API, admin_headers: dict[str, str]
) -> None:
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!KeyOf", lambda loader, node: ("KeyOf", node.value))
    Loader.add_constructor(
        "!Find", lambda loader, node: ("Find", loader.construct_sequence(node, deep=True))
    )
    response = await client.get(
        "/api/v3/flows/instances/default-enrollment-flow/export/", headers=admin_headers
    )
    assert response.status == 200 and response.content_type == "text/yaml"
    assert "default-enrollment-flow.yaml" in response.headers["Content-Disposition"]
    document = yaml.load(await response.text(), Loader=Loader)  # noqa: S506 (our safe loader)
    assert document["version"] == 1
    entries = document["entries"]
    assert entries[0]["model"] == "authentik_flows.flow"
    assert entries[0]["identifiers"] == {"slug": "default-enrollment-flow"}
    bindings = [e for e in entries if e["model"] == "authentik_flows.flowstagebinding"]
    stage_ids = {e["id"] for e in entries if e["model"].startswith("authentik_stages_")}
    assert bindings and all(b["identifiers"]["stage"][1] in stage_ids for b in bindings)
    assert [b["identifiers"]["order"] for b in bindings] == sorted(
        b["identifiers"]["order"] for b in bindings
    )
    # the prompt stage's prompts are entries of their own, which its fields name
    prompts = {e["id"]: e for e in entries if e["model"] == "authentik_stages_prompt.prompt"}
    (prompt_stage,) = [e for e in entries if e["model"] == "authentik_stages_prompt.promptstage"]
    assert [prompts[ref[1]]["attrs"]["field_key"] for ref in prompt_stage["attrs"]["fields"]] == [
        "username",
        "name",
        "email",
        "password",
        "password_repeat",
    ]
    # the policy that keeps enrollment off is exported with its binding on the flow
    policy_bindings = [e for e in entries if e["model"] == "authentik_policies.policybinding"]
    assert any(p["identifiers"]["target"] == ("KeyOf", "flow") for p in policy_bindings)
    # a normal user may not export
    anonymous = await client.get("/api/v3/flows/instances/default-enrollment-flow/export/")
    assert anonymous.status in (401, 403)


async def test_require_redirect_and_require_outpost(client: Any, api: API) -> None:
    for requirement in ("require_redirect", "require_outpost"):
        slug = requirement.replace("_", "-")
        status, _ = await api(
            "POST",
            "flows/instances/",
            json={**FLOW, "slug": slug, "authentication": requirement},
        )
        assert status == 201
    executor = "/api/v3/flows/executor/{}/"
    body = await (await client.get(executor.format("require-redirect"))).json()
    assert body["component"] == "ak-stage-access-denied"
    client.session.cookie_jar.clear()
    query = "?query=" + "next%3D%252Fif%252Fuser%252F"
    body = await (await client.get(executor.format("require-redirect") + query)).json()
    assert body["component"] == "xak-flow-redirect"  # redirected here: allowed (no stages)
    client.session.cookie_jar.clear()
    query = "?query=" + "next%3Dhttps%253A%252F%252Fevil.example%252F"
    body = await (await client.get(executor.format("require-redirect") + query)).json()
    assert body["component"] == "ak-stage-access-denied"  # a refused next is no redirect
    client.session.cookie_jar.clear()
    body = await (await client.get(executor.format("require-outpost"))).json()
    assert body["component"] == "ak-stage-access-denied"
    assert "outpost" in body["error_message"]
