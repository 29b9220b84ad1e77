"""Flow and policy definitions, read from the store once and kept in process.

Every step of a flow needs its flow, its stage bindings, their stages and the policy bindings of
each target. These change rarely (an admin edits a flow) but are read several times per request,
so a `Snapshot` of all of them is loaded in one read transaction and served from memory.

A snapshot is dropped when `Store.config_generation` moves: a commit that wrote one of
`store.CONFIG_TABLES` in this process bumps it at once, and other replicas bump it when the bus
tells them (see `app`). A snapshot is also never older than `MAX_AGE` seconds, which bounds the
staleness should a bus message be lost.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from tessera.core import stages, store
from tessera.core.identity import groups
from tessera.core.policies import engine
from tessera.core.stages import base
from tessera.core.store import crud, snapshots

MAX_AGE = 10.0


@dataclass
class Snapshot:
    flows: dict[str, dict[str, Any]]  # by slug
    bindings: dict[str, list[dict[str, Any]]]  # stage bindings by flow pk, in order
    binding_rows: dict[str, dict[str, Any]]  # stage bindings by pk
    stage_rows: dict[str, dict[str, Any]]
    policy_bindings: dict[str, list[dict[str, Any]]]  # enabled ones by target, in order
    policies: dict[str, dict[str, Any]]
    tree: groups.Tree
    _built: dict[str, base.Stage] = field(default_factory=dict)
    _by_pk: dict[str, dict[str, Any]] | None = None

    def flow_named(self, ref: object) -> dict[str, Any] | None:
        """The flow a stage setting names: by pk, or by slug as settings before migration 0009
        did; None when there is no such flow."""
        if not isinstance(ref, str):
            return None
        if self._by_pk is None:
            self._by_pk = {str(f["pk"]): f for f in self.flows.values()}
        return self._by_pk.get(ref) or self.flows.get(ref)

    def stage(self, pk: str) -> base.Stage:
        """The stage instance for a stored stage (built once); raises stages.StageError."""
        built = self._built.get(pk)
        if built is None:
            row = self.stage_rows[pk]
            built = self._built[pk] = stages.build(row["kind"], row["config"])
        return built

    async def policy_load(
        self, db: store.Store, target: str, user: dict[str, Any] | None
    ) -> engine.Loaded:
        """What the engine needs to evaluate `target`; reads the user's groups only when the
        target has bindings."""
        if not self.policy_bindings.get(target):
            return engine.Loaded([], {}, set())
        return self.loaded(target, await member_of(db, user))

    def loaded(self, target: str, member_of: list[str]) -> engine.Loaded:
        """`policy_load` for a user whose groups (`member_of`) the caller has read: callers that
        evaluate many targets for one user read them once."""
        rows = self.policy_bindings.get(target, [])
        if not rows:
            return engine.Loaded([], {}, set())
        member_of = [g for g in member_of if g in self.tree.rows]
        ancestors = {a for g in member_of for a in self.tree.ancestors(g)}
        policies = {r["policy"]: self.policies[r["policy"]] for r in rows if r["policy"]}
        return engine.Loaded(
            rows,
            policies,
            ancestors,
            [self.tree.rows[g] for g in member_of],
            [self.tree.rows[a] for a in sorted(ancestors)],
        )


async def member_of(db: store.Store, user: dict[str, Any] | None) -> list[str]:
    """The pks of the groups `user` is a direct member of (none for no user)."""
    if user is None:
        return []
    async with db.read() as tx:
        return list((await crud.groups_of_users(tx, [user["pk"]]))[user["pk"]])


class Definitions:
    """The current snapshot of one store's flow and policy definitions."""

    def __init__(self, db: store.Store) -> None:
        self.db = db
        self.current = snapshots.Snapshots(db, self._load, MAX_AGE)

    async def get(self) -> Snapshot:
        return await self.current.get()

    async def _load(self) -> Snapshot:
        async with self.db.read() as tx:
            flows = await crud.all_rows(tx, "flows")
            bindings = await crud.rows(tx, "flow_stage_bindings", [], ordering=("order",))
            stage_rows = await crud.all_rows(tx, "stages")
            enabled = [crud.Filter("enabled", "eq", True)]
            policy_bindings = await crud.rows(tx, "policy_bindings", enabled, ordering=("order",))
            policies = await crud.all_rows(tx, "policies")
            tree = await groups.Tree.load(tx)
        by_flow: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in bindings:
            by_flow[row["target"]].append(row)
        by_target: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in policy_bindings:
            by_target[row["target"]].append(row)
        return Snapshot(
            flows={f["slug"]: f for f in flows},
            bindings=dict(by_flow),
            binding_rows={b["pk"]: b for b in bindings},
            stage_rows={s["pk"]: s for s in stage_rows},
            policy_bindings=dict(by_target),
            policies={p["pk"]: p for p in policies},
            tree=tree,
        )
