"""A flow as an authentik blueprint (v1 YAML): the flow, its stages and bindings, and the
policies bound to them, as `GET /api/v3/flows/instances/<slug>/export/` returns it.

Entries refer to each other with `!KeyOf <id>` (a prompt stage to its prompts, entries of
their own); group and user bindings find their subject by
name with `!Find`. Stage and policy settings are exported as stored: they hold no secrets.
"""

from __future__ import annotations

from typing import Any

import yaml

from tessera.core import store, wire
from tessera.core.flows import stage_admin
from tessera.core.store import crud

_FLOW_ATTRS = (
    "name",
    "title",
    "designation",
    "authentication",
    "policy_engine_mode",
    "denied_action",
    "layout",
    "compatibility_mode",
)


class _KeyOf(str):
    """`!KeyOf id`: the primary key of an earlier entry of the blueprint."""


class _Find(list[Any]):
    """`!Find [model, [field, value]]`: an existing object looked up when the blueprint applies."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_KeyOf, lambda d, v: d.represent_scalar("!KeyOf", str(v)))
_Dumper.add_representer(_Find, lambda d, v: d.represent_sequence("!Find", list(v)))


def _policy_model(kind: str) -> str:
    return f"authentik_policies_{kind}.{kind.replace('_', '')}policy"


async def export(tx: store.Tx, flow: dict[str, Any]) -> str:
    entries: list[dict[str, Any]] = [
        {
            "model": "authentik_flows.flow",
            "id": "flow",
            "identifiers": {"slug": flow["slug"]},
            "attrs": {k: flow[k] for k in _FLOW_ATTRS},
        }
    ]
    bindings = sorted(
        await crud.find_many(tx, "flow_stage_bindings", "target", [flow["pk"]]),
        key=lambda b: (b["order"], b["pk"]),
    )
    stage_rows = {
        s["pk"]: s for s in await crud.find_many(tx, "stages", "pk", [b["stage"] for b in bindings])
    }
    targets = {flow["pk"]: "flow"}
    stage_ids: dict[str, str] = {}
    for n, binding in enumerate(bindings):
        stage = stage_rows.get(binding["stage"])
        if stage is None:
            continue
        if stage["pk"] not in stage_ids:
            stage_ids[stage["pk"]] = f"stage-{len(stage_ids) + 1}"
            attrs = stage_admin.stored_settings(stage)
            if stage["kind"] == "prompt":
                attrs["fields"] = await _prompt_entries(tx, attrs.get("fields", []), entries)
            entries.append(
                {
                    "model": wire.flows.stage_names(stage["kind"])["meta_model_name"],
                    "id": stage_ids[stage["pk"]],
                    "identifiers": {"name": stage["name"]},
                    "attrs": attrs,
                }
            )
        targets[binding["pk"]] = f"binding-{n + 1}"
        entries.append(
            {
                "model": "authentik_flows.flowstagebinding",
                "id": targets[binding["pk"]],
                "identifiers": {
                    "target": _KeyOf("flow"),
                    "stage": _KeyOf(stage_ids[stage["pk"]]),
                    "order": binding["order"],
                },
                "attrs": {
                    k: binding[k]
                    for k in (
                        "evaluate_on_plan",
                        "re_evaluate_policies",
                        "invalid_response_action",
                        "policy_engine_mode",
                    )
                },
            }
        )
    entries.extend(await _policy_entries(tx, targets))
    document = {
        "version": 1,
        "metadata": {"name": f"Tessera export of {flow['slug']}"},
        "entries": entries,
    }
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True)


async def _prompt_entries(
    tx: store.Tx, pks: list[str], entries: list[dict[str, Any]]
) -> list[_KeyOf]:
    """A prompt stage's prompts as entries of their own (added to `entries` once each); the
    stage's `fields` refer to them."""
    rows = {r["pk"]: r for r in await crud.find_many(tx, "prompts", "pk", pks)}
    done = {e["identifiers"].get("name"): e["id"] for e in entries if e["id"].startswith("prompt-")}
    out = []
    for pk in pks:
        row = rows.get(pk)
        if row is None:
            continue
        if row["name"] not in done:
            done[row["name"]] = f"prompt-{len(done) + 1}"
            entries.append(
                {
                    "model": "authentik_stages_prompt.prompt",
                    "id": done[row["name"]],
                    "identifiers": {"name": row["name"]},
                    "attrs": {
                        k: row[k] for k in wire.flows.PromptRequest.model_fields if k != "name"
                    },
                }
            )
        out.append(_KeyOf(done[row["name"]]))
    return out


async def _policy_entries(tx: store.Tx, targets: dict[str, str]) -> list[dict[str, Any]]:
    rows = sorted(
        await crud.find_many(tx, "policy_bindings", "target", list(targets)),
        key=lambda r: (list(targets).index(r["target"]), r["order"], r["pk"]),
    )
    wanted = [r["policy"] for r in rows if r["policy"]]
    policies = {p["pk"]: p for p in await crud.find_many(tx, "policies", "pk", wanted)}
    group_names = {
        g["pk"]: g["name"]
        for g in await crud.find_many(tx, "groups", "pk", [r["group"] for r in rows if r["group"]])
    }
    usernames = {
        u["pk"]: u["username"]
        for u in await crud.find_many(tx, "users", "pk", [r["user"] for r in rows if r["user"]])
    }
    entries: list[dict[str, Any]] = []
    policy_ids: dict[str, str] = {}
    for row in rows:
        subject: dict[str, Any]
        if row["policy"] is not None:
            policy = policies[row["policy"]]
            if policy["pk"] not in policy_ids:
                policy_ids[policy["pk"]] = f"policy-{len(policy_ids) + 1}"
                entries.append(
                    {
                        "model": _policy_model(policy["kind"]),
                        "id": policy_ids[policy["pk"]],
                        "identifiers": {"name": policy["name"]},
                        "attrs": {
                            "execution_logging": policy["execution_logging"],
                            **policy["config"],
                        },
                    }
                )
            subject = {"policy": _KeyOf(policy_ids[policy["pk"]])}
        elif row["group"] is not None:
            name = group_names[row["group"]]
            subject = {"group": _Find(["authentik_core.group", ["name", name]])}
        else:
            name = usernames[row["user"]]
            subject = {"user": _Find(["authentik_core.user", ["username", name]])}
        entries.append(
            {
                "model": "authentik_policies.policybinding",
                "identifiers": {
                    "target": _KeyOf(targets[row["target"]]),
                    "order": row["order"],
                    **subject,
                },
                "attrs": {k: row[k] for k in ("negate", "enabled", "timeout", "failure_result")},
            }
        )
    return entries
