"""LDAP providers: ldap_providers, ldap_search_grants, ldap_sessions, directory_changes

An LDAP provider is a row of `providers` and one here, with one pk. `ldap_search_grants` holds
authentik's "search full directory" permission per provider, granted to a user or a group;
`ldap_sessions` the core sessions LDAP binds opened. `directory_changes` is the journal of
changed users and groups the LDAP outposts refetch from: triggers on the tables of the
directory write it (so no path of writing them can forget), on SQLite and on PostgreSQL.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tessera.core.store.tables

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

_BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# The advisory lock key of the journal's writers on PostgreSQL (SQLite has one writer anyway).
JOURNAL_LOCK = 0x7E55_0015
_UTC = tessera.core.store.tables.UTCDateTime(timezone=True)

# table -> (what a row names: (kind, column), ...), the columns whose update is a change (None:
# a link table, whose every update is one).
_JOURNALED: dict[str, tuple[tuple[tuple[str, str], ...], tuple[str, ...] | None]] = {
    "users": (
        (("user", "pk"),),
        ("username", "name", "email", "password", "is_active", "type", "path", "attributes"),
    ),
    "groups": ((("group", "pk"),), ("num_pk", "name", "is_superuser", "attributes")),
    "group_members": ((("user", "user_pk"), ("group", "group_pk")), None),
    "group_parents": ((("group", "group_pk"),), None),
    "ldap_search_grants": ((("user", "user_pk"), ("group", "group_pk")), None),
}


def _inserts(names: tuple[tuple[str, str], ...], row: str) -> str:
    return " ".join(
        f"INSERT INTO directory_changes (kind, object) SELECT '{kind}', CAST({row}.{column} AS "
        f"TEXT) WHERE {row}.{column} IS NOT NULL;"
        for kind, column in names
    )


def _changed(columns: tuple[str, ...], distinct: str) -> str:
    return " OR ".join(f"OLD.{c} {distinct} NEW.{c}" for c in columns)


def _sqlite_triggers(table: str) -> list[str]:
    names, columns = _JOURNALED[table]
    update = _inserts(names, "NEW") if columns else _inserts(names, "OLD") + _inserts(names, "NEW")
    when = f"WHEN {_changed(columns, 'IS NOT')} " if columns else ""
    return [
        f"CREATE TRIGGER directory_changes_{table}_insert AFTER INSERT ON {table} "
        f"BEGIN {_inserts(names, 'NEW')} END",
        f"CREATE TRIGGER directory_changes_{table}_delete AFTER DELETE ON {table} "
        f"BEGIN {_inserts(names, 'OLD')} END",
        f"CREATE TRIGGER directory_changes_{table}_update AFTER UPDATE ON {table} {when}"
        f"BEGIN {update} END",
    ]


def _postgresql_triggers(table: str) -> list[str]:
    """Deferred to the commit, under one transaction-scoped advisory lock: a journal row's
    `seq` is taken just before its transaction commits, and the next journaling transaction
    waits until then, so `seq` follows commit order (a reader that sees a row sees every row
    below it that will ever be seen) and no lock is held while the transaction does its work."""
    names, columns = _JOURNALED[table]
    old_on = "TG_OP = 'DELETE'" if columns else "TG_OP <> 'INSERT'"
    when = f"WHEN ({_changed(columns, 'IS DISTINCT FROM')}) " if columns else ""
    function = (
        f"CREATE FUNCTION directory_changes_{table}() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN PERFORM pg_advisory_xact_lock({JOURNAL_LOCK}); "
        f"IF {old_on} THEN {_inserts(names, 'OLD')} END IF; "
        f"IF TG_OP <> 'DELETE' THEN {_inserts(names, 'NEW')} END IF; RETURN NULL; END $$"
    )
    deferred = "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW"
    return [
        function,
        f"CREATE CONSTRAINT TRIGGER directory_changes_{table}_write AFTER INSERT OR DELETE "
        f"ON {table} {deferred} EXECUTE FUNCTION directory_changes_{table}()",
        f"CREATE CONSTRAINT TRIGGER directory_changes_{table}_update AFTER UPDATE ON {table} "
        f"{deferred} {when}EXECUTE FUNCTION directory_changes_{table}()",
    ]


def create_triggers() -> None:
    """The journal's triggers (also for a later migration that rebuilds one of the tables)."""
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table in _JOURNALED:
        for statement in _sqlite_triggers(table) if sqlite else _postgresql_triggers(table):
            op.execute(statement)


def drop_triggers() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table in _JOURNALED:
        if sqlite:
            for event in ("insert", "delete", "update"):
                op.execute(f"DROP TRIGGER IF EXISTS directory_changes_{table}_{event}")
        else:
            op.execute(f"DROP FUNCTION IF EXISTS directory_changes_{table}() CASCADE")


def _provider_fk(table: str, column: str = "provider") -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        ["providers.pk"],
        name=op.f(f"fk_{table}_{column}_providers"),
        ondelete="CASCADE",
    )


def _flow_fk(column: str, ondelete: str | None = "SET NULL") -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        ["flows.pk"],
        name=op.f(f"fk_ldap_providers_{column}_flows"),
        ondelete=ondelete,
    )


def _providers() -> None:
    op.create_table(
        "ldap_providers",
        sa.Column("pk", _BIGINT, nullable=False),
        sa.Column("authentication_flow", sa.String(length=36), nullable=True),
        sa.Column("authorization_flow", sa.String(length=36), nullable=False),
        sa.Column("invalidation_flow", sa.String(length=36), nullable=True),
        sa.Column("base_dn", sa.String(length=1024), nullable=False),
        sa.Column("base_dn_folded", sa.String(length=1024), nullable=False),
        sa.Column("certificate", sa.String(length=36), nullable=True),
        sa.Column("tls_server_name", sa.String(length=253), server_default="", nullable=False),
        sa.Column("uid_start_number", sa.Integer(), server_default="2000", nullable=False),
        sa.Column("gid_start_number", sa.Integer(), server_default="4000", nullable=False),
        sa.Column("search_mode", sa.String(length=16), server_default="direct", nullable=False),
        sa.Column("bind_mode", sa.String(length=16), server_default="direct", nullable=False),
        sa.Column("mfa_support", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("property_mappings", tessera.core.store.tables.JSON, nullable=False),
        _provider_fk("ldap_providers", "pk"),
        _flow_fk("authentication_flow"),
        _flow_fk("authorization_flow", None),
        _flow_fk("invalidation_flow"),
        sa.ForeignKeyConstraint(
            ["certificate"],
            ["certificate_keypairs.pk"],
            name=op.f("fk_ldap_providers_certificate_certificate_keypairs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_ldap_providers")),
        sa.UniqueConstraint("base_dn_folded", name=op.f("uq_ldap_providers_base_dn_folded")),
    )


def _grants_and_sessions() -> None:
    op.create_table(
        "ldap_search_grants",
        sa.Column("pk", sa.String(length=36), nullable=False),
        sa.Column("provider", _BIGINT, nullable=False),
        sa.Column("user_pk", _BIGINT, nullable=True),
        sa.Column("group_pk", sa.String(length=36), nullable=True),
        sa.Column("created", _UTC, nullable=False),
        sa.CheckConstraint(
            "(user_pk IS NULL) <> (group_pk IS NULL)",
            name=op.f("ck_ldap_search_grants_one_grantee"),
        ),
        _provider_fk("ldap_search_grants"),
        sa.ForeignKeyConstraint(
            ["user_pk"],
            ["users.pk"],
            name=op.f("fk_ldap_search_grants_user_pk_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["group_pk"],
            ["groups.pk"],
            name=op.f("fk_ldap_search_grants_group_pk_groups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_ldap_search_grants")),
        sa.UniqueConstraint(
            "provider", "group_pk", name=op.f("uq_ldap_search_grants_provider_group_pk")
        ),
        sa.UniqueConstraint(
            "provider", "user_pk", name=op.f("uq_ldap_search_grants_provider_user_pk")
        ),
    )
    with op.batch_alter_table("ldap_search_grants", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ldap_search_grants_provider"), ["provider"], unique=False
        )
    op.create_table(
        "ldap_sessions",
        sa.Column("session_digest", sa.String(length=64), nullable=False),
        sa.Column("provider", _BIGINT, nullable=False),
        sa.Column("user_pk", _BIGINT, nullable=False),
        sa.Column("created", _UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["session_digest"],
            ["sessions.key_digest"],
            name=op.f("fk_ldap_sessions_session_digest_sessions"),
            ondelete="CASCADE",
        ),
        _provider_fk("ldap_sessions"),
        sa.ForeignKeyConstraint(
            ["user_pk"],
            ["users.pk"],
            name=op.f("fk_ldap_sessions_user_pk_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_digest", name=op.f("pk_ldap_sessions")),
    )
    with op.batch_alter_table("ldap_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ldap_sessions_provider"), ["provider"], unique=False)
        batch_op.create_index(batch_op.f("ix_ldap_sessions_user_pk"), ["user_pk"], unique=False)


def _journal() -> None:
    op.create_table(
        "directory_changes",
        sa.Column("seq", _BIGINT, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("object", sa.String(length=36), nullable=False),
        sa.Column("created", _UTC, server_default=sa.func.current_timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_directory_changes")),
        sqlite_autoincrement=True,
    )
    create_triggers()


def upgrade() -> None:
    _providers()
    _grants_and_sessions()
    _journal()


def downgrade() -> None:
    drop_triggers()
    op.drop_table("directory_changes")
    with op.batch_alter_table("ldap_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ldap_sessions_user_pk"))
        batch_op.drop_index(batch_op.f("ix_ldap_sessions_provider"))
    op.drop_table("ldap_sessions")
    with op.batch_alter_table("ldap_search_grants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ldap_search_grants_provider"))
    op.drop_table("ldap_search_grants")
    op.drop_table("ldap_providers")
