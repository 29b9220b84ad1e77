"""The SQL schema, as SQLAlchemy Core tables. Alembic migrations under `migrations/` create it.

Only the store imports SQLAlchemy; the rest of the core sees rows as dicts. Ids follow authentik:
users and providers have integer keys, every other object a UUID string.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


class UTCDateTime(sa.TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every engine (SQLite keeps no zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


# 64-bit keys on PostgreSQL; SQLite's INTEGER PRIMARY KEY is already 64-bit and autoincrements.
BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _user_ref(name: str = "user_pk", *, ondelete: str = "CASCADE", **kw: object) -> sa.Column[int]:
    """A reference to a user; deleting the user deletes (or detaches) the referring row."""
    return sa.Column(name, BIGINT, sa.ForeignKey("users.pk", ondelete=ondelete), **kw)  # type: ignore[arg-type]


def _uuid() -> sa.Column[str]:
    return sa.Column("pk", sa.String(36), primary_key=True)


def _created() -> sa.Column[dt.datetime]:
    return sa.Column("created", UTCDateTime(), nullable=False)


users = sa.Table(
    "users",
    metadata,
    sa.Column("pk", BIGINT, primary_key=True),
    sa.Column("uuid", sa.String(36), nullable=False, unique=True),
    sa.Column("username", sa.String(150), nullable=False, index=True),
    # Case-folded in Python (SQLite's lower() folds ASCII only): unique regardless of case.
    sa.Column("username_folded", sa.String(450), nullable=False, unique=True),
    sa.Column("name", sa.String(256), nullable=False, server_default=""),
    sa.Column("email", sa.String(254), nullable=False, server_default=""),
    sa.Column("password", sa.String(256), nullable=False, server_default=""),
    sa.Column("password_change_date", UTCDateTime(), nullable=True),
    sa.Column("is_active", sa.Boolean(), nullable=False, server_default=sa.true()),
    sa.Column("type", sa.String(32), nullable=False, server_default="internal"),
    sa.Column("path", sa.String(200), nullable=False, server_default="users"),
    sa.Column("attributes", JSON, nullable=False),
    sa.Column("last_login", UTCDateTime(), nullable=True),
    sa.Column("date_joined", UTCDateTime(), nullable=False),
    sa.Column("managed", sa.String(200), nullable=True),
    sa.Column("last_updated", UTCDateTime(), nullable=True),
)

groups = sa.Table(
    "groups",
    metadata,
    _uuid(),
    sa.Column("num_pk", sa.Integer(), nullable=False, unique=True),
    sa.Column("name", sa.String(80), nullable=False, unique=True),
    sa.Column("is_superuser", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("attributes", JSON, nullable=False),
)

# A group's parents (authentik's `Group.parents`): several per group, no cycles (checked on write).
group_parents = sa.Table(
    "group_parents",
    metadata,
    sa.Column(
        "group_pk", sa.String(36), sa.ForeignKey("groups.pk", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column(
        "parent_pk",
        sa.String(36),
        sa.ForeignKey("groups.pk", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    ),
    # The order the parents were given in, which the API keeps.
    sa.Column("position", sa.Integer(), nullable=False, server_default="0"),
)

group_members = sa.Table(
    "group_members",
    metadata,
    sa.Column(
        "group_pk", sa.String(36), sa.ForeignKey("groups.pk", ondelete="CASCADE"), primary_key=True
    ),
    _user_ref(primary_key=True, index=True),
)

providers = sa.Table(
    "providers",
    metadata,
    sa.Column("pk", BIGINT, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("component", sa.String(64), nullable=False),
    # Set by the operator: the Kubernetes resource this object mirrors (writes need its header).
    sa.Column("managed", sa.String(300), nullable=True, unique=True),
    _created(),
)

applications = sa.Table(
    "applications",
    metadata,
    _uuid(),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("slug", sa.String(50), nullable=False, unique=True),
    sa.Column(
        "provider",
        BIGINT,
        sa.ForeignKey("providers.pk", ondelete="SET NULL"),
        unique=True,
    ),
    sa.Column("meta_launch_url", sa.String(2000), nullable=False, server_default=""),
    sa.Column("open_in_new_tab", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("meta_description", sa.Text(), nullable=False, server_default=""),
    sa.Column("meta_publisher", sa.String(200), nullable=False, server_default=""),
    sa.Column("group", sa.String(200), nullable=False, server_default=""),
    sa.Column("policy_engine_mode", sa.String(8), nullable=False, server_default="any"),
    sa.Column("managed", sa.String(300), nullable=True, unique=True),
    _created(),
    # An icon's URL (authentik's `meta_icon`), and whether the portal hides the application.
    sa.Column("meta_icon", sa.String(2000), nullable=False, server_default=""),
    sa.Column("meta_hide", sa.Boolean(), nullable=False, server_default=sa.false()),
)

tokens = sa.Table(
    "tokens",
    metadata,
    _uuid(),
    sa.Column("identifier", sa.String(255), nullable=False, unique=True),
    sa.Column("intent", sa.String(32), nullable=False),
    _user_ref(nullable=False, index=True),
    sa.Column("description", sa.Text(), nullable=False, server_default=""),
    sa.Column("expires", UTCDateTime(), nullable=True),
    sa.Column("expiring", sa.Boolean(), nullable=False, server_default=sa.true()),
    # SECURITY: the key is stored as a keyed digest (for lookup) and sealed with a key derived
    # from the secret key (for view_key); a database dump alone yields no working token.
    sa.Column("key_digest", sa.String(64), nullable=False, unique=True),
    sa.Column("key_sealed", sa.Text(), nullable=False),
    sa.Column("managed", sa.String(200), nullable=True),
    _created(),
)

sessions = sa.Table(
    "sessions",
    metadata,
    # SECURITY: sha256 of the cookie value; the cookie itself is never stored.
    sa.Column("key_digest", sa.String(64), primary_key=True),
    _user_ref(nullable=False, index=True),
    sa.Column("last_ip", sa.String(45), nullable=False, server_default=""),
    sa.Column("last_user_agent", sa.String(512), nullable=False, server_default=""),
    sa.Column("expires", UTCDateTime(), nullable=False, index=True),
    _created(),
)

certificate_keypairs = sa.Table(
    "certificate_keypairs",
    metadata,
    _uuid(),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("certificate_data", sa.Text(), nullable=False),
    sa.Column("key_sealed", sa.Text(), nullable=False, server_default=""),
    sa.Column("fingerprint_sha256", sa.String(95), nullable=False),
    sa.Column("fingerprint_sha1", sa.String(59), nullable=False),
    sa.Column("cert_expiry", UTCDateTime(), nullable=False),
    sa.Column("cert_subject", sa.Text(), nullable=False),
    # authentik's names: rsa, ec, ed25519, ed448 (before migration 0010, "ecdsa" for ec).
    sa.Column("key_type", sa.String(16), nullable=True),
    sa.Column("managed", sa.String(200), nullable=True),
    _created(),
)

events = sa.Table(
    "events",
    metadata,
    _uuid(),
    sa.Column("action", sa.String(64), nullable=False, index=True),
    sa.Column("app", sa.String(200), nullable=False),
    sa.Column("user", JSON, nullable=False),
    sa.Column("context", JSON, nullable=False),
    sa.Column("client_ip", sa.String(45), nullable=True),
    sa.Column("created", UTCDateTime(), nullable=False, index=True),
    sa.Column("expires", UTCDateTime(), nullable=False, index=True),
)

leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("holder", sa.String(100), nullable=False),
    sa.Column("expires", UTCDateTime(), nullable=False),
)

system_state = sa.Table(
    "system_state",
    metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("value", JSON, nullable=False),
)

# Flows, stages and policies ------------------------------------------------------------------

flows = sa.Table(
    "flows",
    metadata,
    _uuid(),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("slug", sa.String(50), nullable=False, unique=True),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("designation", sa.String(32), nullable=False, index=True),
    sa.Column("authentication", sa.String(32), nullable=False, server_default="none"),
    sa.Column("policy_engine_mode", sa.String(8), nullable=False, server_default="any"),
    sa.Column("denied_action", sa.String(32), nullable=False, server_default="message_continue"),
    sa.Column("layout", sa.String(40), nullable=False, server_default="stacked"),
    sa.Column("compatibility_mode", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("managed", sa.String(200), nullable=True),
    _created(),
)

stages = sa.Table(
    "stages",
    metadata,
    _uuid(),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("kind", sa.String(64), nullable=False, index=True),
    # Per-kind settings, validated by the stage kind's own model at the API edge.
    sa.Column("config", JSON, nullable=False),
    sa.Column("managed", sa.String(200), nullable=True),
    _created(),
)

# The prompt stage's fields (authentik's Prompt); a prompt stage's settings list their pks.
prompts = sa.Table(
    "prompts",
    metadata,
    _uuid(),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("field_key", sa.String(100), nullable=False),
    sa.Column("label", sa.String(200), nullable=False),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("required", sa.Boolean(), nullable=False),
    sa.Column("placeholder", sa.Text(), nullable=False),
    sa.Column("initial_value", sa.Text(), nullable=False),
    sa.Column("order", sa.Integer(), nullable=False),
    sa.Column("sub_text", sa.Text(), nullable=False),
    sa.Column("placeholder_expression", sa.Boolean(), nullable=False),
    sa.Column("initial_value_expression", sa.Boolean(), nullable=False),
    _created(),
)

flow_stage_bindings = sa.Table(
    "flow_stage_bindings",
    metadata,
    _uuid(),
    sa.Column("target", sa.String(36), sa.ForeignKey("flows.pk", ondelete="CASCADE"), index=True),
    sa.Column("stage", sa.String(36), sa.ForeignKey("stages.pk", ondelete="CASCADE"), index=True),
    sa.Column("order", sa.Integer(), nullable=False),
    sa.Column("evaluate_on_plan", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("re_evaluate_policies", sa.Boolean(), nullable=False, server_default=sa.true()),
    sa.Column("invalid_response_action", sa.String(32), nullable=False, server_default="retry"),
    sa.Column("policy_engine_mode", sa.String(8), nullable=False, server_default="any"),
    sa.UniqueConstraint("target", "stage", "order"),
)

policies = sa.Table(
    "policies",
    metadata,
    _uuid(),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("kind", sa.String(64), nullable=False, index=True),
    sa.Column("execution_logging", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("config", JSON, nullable=False),
    sa.Column("managed", sa.String(200), nullable=True),
    _created(),
)

policy_bindings = sa.Table(
    "policy_bindings",
    metadata,
    _uuid(),
    # The bound object: a flow, a flow-stage binding or an application (their pks are UUIDs).
    sa.Column("target", sa.String(36), nullable=False, index=True),
    sa.Column("policy", sa.String(36), sa.ForeignKey("policies.pk", ondelete="CASCADE")),
    sa.Column("group", sa.String(36), sa.ForeignKey("groups.pk", ondelete="CASCADE")),
    _user_ref("user"),
    sa.Column("negate", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true()),
    sa.Column("order", sa.Integer(), nullable=False),
    sa.Column("timeout", sa.Integer(), nullable=False, server_default="30"),
    sa.Column("failure_result", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.CheckConstraint(
        'CASE WHEN "policy" IS NULL THEN 0 ELSE 1 END + CASE WHEN "group" IS NULL THEN 0 ELSE 1 END'
        ' + CASE WHEN "user" IS NULL THEN 0 ELSE 1 END = 1',
        name="one_subject",
    ),
)

devices = sa.Table(
    "authenticator_devices",
    metadata,
    _uuid(),
    # authentik's integer device id (the API's pk); max + 1 under a lock (`identity.devices`).
    sa.Column("num_pk", sa.Integer(), nullable=True, unique=True),
    _user_ref(nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False),  # totp | static | webauthn
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("confirmed", sa.Boolean(), nullable=False, server_default=sa.false()),
    # SECURITY: secrets (TOTP seed, recovery codes' digests, credential public key) sealed.
    sa.Column("secret_sealed", sa.Text(), nullable=False, server_default=""),
    sa.Column("data", JSON, nullable=False),
    sa.Column("last_used", UTCDateTime(), nullable=True),
    _created(),
    sa.Column("last_updated", UTCDateTime(), nullable=True),  # set by every write since 0005
)

consents = sa.Table(
    "user_consents",
    metadata,
    _uuid(),
    _user_ref(nullable=False),
    sa.Column(
        "application",
        sa.String(36),
        sa.ForeignKey("applications.pk", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("permissions", sa.Text(), nullable=False, server_default=""),
    sa.Column("expires", UTCDateTime(), nullable=True),
    _created(),
    sa.UniqueConstraint("user_pk", "application"),
)

invitations = sa.Table(
    "invitations",
    metadata,
    _uuid(),
    sa.Column("name", sa.String(50), nullable=False, unique=True),
    sa.Column("expires", UTCDateTime(), nullable=True),
    sa.Column("fixed_data", JSON, nullable=False),
    sa.Column("single_use", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("flow", sa.String(36), sa.ForeignKey("flows.pk", ondelete="CASCADE"), nullable=True),
    _user_ref("created_by", nullable=False),
    _created(),
)

# OAuth2 / OpenID Connect ---------------------------------------------------------------------

oauth2_providers = sa.Table(
    "oauth2_providers",
    metadata,
    sa.Column("pk", BIGINT, sa.ForeignKey("providers.pk", ondelete="CASCADE"), primary_key=True),
    sa.Column("authorization_flow", sa.String(36), sa.ForeignKey("flows.pk"), nullable=False),
    sa.Column(
        "invalidation_flow",
        sa.String(36),
        sa.ForeignKey("flows.pk", ondelete="SET NULL"),
        nullable=True,
    ),
    sa.Column("client_type", sa.String(16), nullable=False),
    sa.Column("client_id", sa.String(255), nullable=False, unique=True),
    # SECURITY: sealed; HS256 needs the value itself, so a digest would not do.
    sa.Column("client_secret_sealed", sa.Text(), nullable=False, server_default=""),
    sa.Column("redirect_uris", JSON, nullable=False),
    sa.Column(
        "signing_key",
        sa.String(36),
        sa.ForeignKey("certificate_keypairs.pk", ondelete="SET NULL"),
        nullable=True,
    ),
    # Keys replaced by a rotation stay published (JWKS) and accepted until `until`.
    sa.Column("previous_keys", JSON, nullable=False),
    sa.Column("access_code_validity", sa.String(100), nullable=False),
    sa.Column("access_token_validity", sa.String(100), nullable=False),
    sa.Column("refresh_token_validity", sa.String(100), nullable=False),
    sa.Column("sub_mode", sa.String(32), nullable=False),
    sa.Column("issuer_mode", sa.String(32), nullable=False),
    sa.Column("include_claims_in_id_token", sa.Boolean(), nullable=False),
    sa.Column("property_mappings", JSON, nullable=False),
    # The grants the client may use (authentik's names); null: every grant (before 0011).
    sa.Column("grant_types", JSON, nullable=True),
    sa.Column("logout_uri", sa.String(2000), nullable=False, server_default=""),
    sa.Column("logout_method", sa.String(16), nullable=False, server_default="backchannel"),
)

scope_mappings = sa.Table(
    "scope_mappings",
    metadata,
    _uuid(),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("scope_name", sa.String(255), nullable=False, index=True),
    sa.Column("description", sa.Text(), nullable=False, server_default=""),
    sa.Column("expression", sa.Text(), nullable=False),
    sa.Column("managed", sa.String(200), nullable=True, unique=True),
    _created(),
)


def _provider_ref() -> sa.Column[int]:
    return sa.Column(
        "provider", BIGINT, sa.ForeignKey("providers.pk", ondelete="CASCADE"), nullable=False
    )


# A grant is what one authorization decided: who, for which client, which scopes, in which login
# session. Codes, refresh tokens and the access tokens' ids all point at their grant, so reusing a
# code or a rotated refresh token can revoke everything issued from it at once.
oauth2_grants = sa.Table(
    "oauth2_grants",
    metadata,
    _uuid(),
    _provider_ref(),
    _user_ref(nullable=False, index=True),
    sa.Column("scope", sa.Text(), nullable=False),
    sa.Column("nonce", sa.String(512), nullable=True),
    sa.Column("session_digest", sa.String(64), nullable=True, index=True),
    sa.Column("auth_time", UTCDateTime(), nullable=False),
    sa.Column("amr", JSON, nullable=False),
    sa.Column("revoked", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("expires", UTCDateTime(), nullable=False, index=True),
    _created(),
)


def _grant_ref() -> sa.Column[str]:
    return sa.Column(
        "grant", sa.String(36), sa.ForeignKey("oauth2_grants.pk", ondelete="CASCADE"), index=True
    )


# SECURITY: codes and refresh tokens are stored as keyed digests only.
oauth2_codes = sa.Table(
    "oauth2_codes",
    metadata,
    sa.Column("digest", sa.String(64), primary_key=True),
    _grant_ref(),
    sa.Column("redirect_uri", sa.String(2000), nullable=False),
    sa.Column("code_challenge", sa.String(128), nullable=True),
    sa.Column("code_challenge_method", sa.String(8), nullable=True),
    sa.Column("used", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("expires", UTCDateTime(), nullable=False, index=True),
)

oauth2_refresh_tokens = sa.Table(
    "oauth2_refresh_tokens",
    metadata,
    sa.Column("digest", sa.String(64), primary_key=True),
    _grant_ref(),
    sa.Column("scope", sa.Text(), nullable=False),
    sa.Column("used", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("expires", UTCDateTime(), nullable=False, index=True),
    _created(),
)

# Access tokens are signed JWTs checked without the store; only revocations are written down.
oauth2_revoked = sa.Table(
    "oauth2_revoked",
    metadata,
    sa.Column("jti", sa.String(64), primary_key=True),
    sa.Column("expires", UTCDateTime(), nullable=False, index=True),
)

# Access tokens issued under a grant (their ids), so that revoking the grant revokes them.
oauth2_access_ids = sa.Table(
    "oauth2_access_ids",
    metadata,
    sa.Column("jti", sa.String(64), primary_key=True),
    _grant_ref(),
    sa.Column("expires", UTCDateTime(), nullable=False, index=True),
)

oauth2_device_codes = sa.Table(
    "oauth2_device_codes",
    metadata,
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column("user_code", sa.String(16), nullable=False, unique=True),
    _provider_ref(),
    sa.Column("scope", sa.Text(), nullable=False),
    _user_ref(nullable=True),
    sa.Column("session_digest", sa.String(64), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),  # pending | approved | denied | used
    sa.Column("last_poll", UTCDateTime(), nullable=True),
    sa.Column("expires", UTCDateTime(), nullable=False, index=True),
)

# Outposts and proxy providers ----------------------------------------------------------------

# A proxy provider is also an OAuth2 client of the core (authentik's ProxyProvider inherits its
# OAuth2Provider): a row of `providers`, one of `oauth2_providers` and this one, all with one pk.
proxy_providers = sa.Table(
    "proxy_providers",
    metadata,
    sa.Column("pk", BIGINT, sa.ForeignKey("providers.pk", ondelete="CASCADE"), primary_key=True),
    sa.Column("mode", sa.String(16), nullable=False, server_default="proxy"),
    sa.Column("external_host", sa.String(2000), nullable=False),
    sa.Column("internal_host", sa.String(2000), nullable=False, server_default=""),
    sa.Column(
        "internal_host_ssl_validation", sa.Boolean(), nullable=False, server_default=sa.true()
    ),
    sa.Column(
        "certificate",
        sa.String(36),
        sa.ForeignKey("certificate_keypairs.pk", ondelete="SET NULL"),
        nullable=True,
    ),
    sa.Column("skip_path_regex", sa.Text(), nullable=False, server_default=""),
    sa.Column("basic_auth_enabled", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("basic_auth_user_attribute", sa.String(200), nullable=False, server_default=""),
    sa.Column("basic_auth_password_attribute", sa.String(200), nullable=False, server_default=""),
    sa.Column("intercept_header_auth", sa.Boolean(), nullable=False, server_default=sa.true()),
    sa.Column("cookie_domain", sa.String(255), nullable=False, server_default=""),
    # SECURITY: sealed like a client secret; it signs the outposts' state and session cookies.
    sa.Column("cookie_secret_sealed", sa.Text(), nullable=False),
)

outposts = sa.Table(
    "outposts",
    metadata,
    _uuid(),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("type", sa.String(16), nullable=False),  # proxy | ldap
    # authentik's OutpostConfig keys (`refresh_interval` among them), as the API shows them.
    sa.Column("config", JSON, nullable=False),
    sa.Column("managed", sa.String(200), nullable=True, unique=True),
    # The outpost's service account (its API token belongs to it); deleted with the outpost.
    _user_ref("user_pk", ondelete="SET NULL", nullable=True, index=True),
    _created(),
)

outpost_providers = sa.Table(
    "outpost_providers",
    metadata,
    sa.Column(
        "outpost", sa.String(36), sa.ForeignKey("outposts.pk", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column(
        "provider",
        BIGINT,
        sa.ForeignKey("providers.pk", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    ),
    sa.Column("position", sa.Integer(), nullable=False, server_default="0"),
)

# SAML 2.0 ------------------------------------------------------------------------------------

saml_property_mappings = sa.Table(
    "saml_property_mappings",
    metadata,
    _uuid(),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("saml_name", sa.String(500), nullable=False),
    sa.Column("friendly_name", sa.String(200), nullable=True),
    sa.Column("expression", sa.Text(), nullable=False),
    sa.Column("managed", sa.String(200), nullable=True, unique=True),
    _created(),
)


def _kp_ref(name: str) -> sa.Column[str]:
    return sa.Column(
        name,
        sa.String(36),
        sa.ForeignKey("certificate_keypairs.pk", ondelete="SET NULL"),
        nullable=True,
    )


def _saml_mapping_ref(name: str) -> sa.Column[str]:
    return sa.Column(
        name,
        sa.String(36),
        sa.ForeignKey("saml_property_mappings.pk", ondelete="SET NULL"),
        nullable=True,
    )


saml_providers = sa.Table(
    "saml_providers",
    metadata,
    sa.Column("pk", BIGINT, sa.ForeignKey("providers.pk", ondelete="CASCADE"), primary_key=True),
    sa.Column(
        "authentication_flow",
        sa.String(36),
        sa.ForeignKey("flows.pk", ondelete="SET NULL"),
        nullable=True,
    ),
    sa.Column("authorization_flow", sa.String(36), sa.ForeignKey("flows.pk"), nullable=False),
    sa.Column(
        "invalidation_flow",
        sa.String(36),
        sa.ForeignKey("flows.pk", ondelete="SET NULL"),
        nullable=True,
    ),
    sa.Column("acs_url", sa.String(2000), nullable=False),
    sa.Column("sls_url", sa.String(2000), nullable=False, server_default=""),
    sa.Column("audience", sa.Text(), nullable=False, server_default=""),
    sa.Column("issuer_override", sa.Text(), nullable=False, server_default=""),
    sa.Column("sp_binding", sa.String(16), nullable=False, server_default="redirect"),
    sa.Column("sls_binding", sa.String(16), nullable=False, server_default="redirect"),
    sa.Column("logout_method", sa.String(32), nullable=False, server_default="frontchannel_iframe"),
    _saml_mapping_ref("name_id_mapping"),
    _saml_mapping_ref("authn_context_class_ref_mapping"),
    sa.Column(
        "assertion_valid_not_before", sa.String(100), nullable=False, server_default="minutes=-5"
    ),
    sa.Column(
        "assertion_valid_not_on_or_after",
        sa.String(100),
        nullable=False,
        server_default="minutes=5",
    ),
    sa.Column(
        "session_valid_not_on_or_after",
        sa.String(100),
        nullable=False,
        server_default="minutes=86400",
    ),
    # authentik's values: the algorithms' XML Signature URIs.
    sa.Column("digest_algorithm", sa.String(100), nullable=False),
    sa.Column("signature_algorithm", sa.String(100), nullable=False),
    _kp_ref("signing_kp"),
    _kp_ref("verification_kp"),
    _kp_ref("encryption_kp"),
    sa.Column("sign_assertion", sa.Boolean(), nullable=False, server_default=sa.true()),
    sa.Column("sign_response", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("sign_logout_request", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("sign_logout_response", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("default_relay_state", sa.Text(), nullable=False, server_default=""),
    sa.Column("default_name_id_policy", sa.String(100), nullable=False),
    sa.Column("property_mappings", JSON, nullable=False),
)

# Which login session an assertion was issued in: Single Logout finds the core session by its
# SessionIndex, and IdP-initiated logout tells each SP the NameID it was given.
saml_sessions = sa.Table(
    "saml_sessions",
    metadata,
    sa.Column("session_index", sa.String(64), primary_key=True),
    sa.Column(
        "provider",
        BIGINT,
        sa.ForeignKey("providers.pk", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    _user_ref(nullable=False),
    sa.Column("session_digest", sa.String(64), nullable=False, index=True),
    sa.Column("name_id", sa.Text(), nullable=False),
    sa.Column("name_id_format", sa.String(200), nullable=False),
    sa.Column("expires", UTCDateTime(), nullable=False),
)

# LDAP ----------------------------------------------------------------------------------------

# An LDAP provider: a row of `providers` (component `ldap`) and one here, with one pk. The
# outposts holding it serve its directory under `base_dn`; `base_dn_folded` (the DN lower-cased,
# without blanks around its separators) is unique, so two providers of an outpost never share a
# tree.
ldap_providers = sa.Table(
    "ldap_providers",
    metadata,
    sa.Column("pk", BIGINT, sa.ForeignKey("providers.pk", ondelete="CASCADE"), primary_key=True),
    sa.Column(
        "authentication_flow",
        sa.String(36),
        sa.ForeignKey("flows.pk", ondelete="SET NULL"),
        nullable=True,
    ),
    sa.Column("authorization_flow", sa.String(36), sa.ForeignKey("flows.pk"), nullable=False),
    sa.Column(
        "invalidation_flow",
        sa.String(36),
        sa.ForeignKey("flows.pk", ondelete="SET NULL"),
        nullable=True,
    ),
    sa.Column("base_dn", sa.String(1024), nullable=False),
    sa.Column("base_dn_folded", sa.String(1024), nullable=False, unique=True),
    _kp_ref("certificate"),
    sa.Column("tls_server_name", sa.String(253), nullable=False, server_default=""),
    sa.Column("uid_start_number", sa.Integer(), nullable=False, server_default="2000"),
    sa.Column("gid_start_number", sa.Integer(), nullable=False, server_default="4000"),
    sa.Column("search_mode", sa.String(16), nullable=False, server_default="direct"),
    sa.Column("bind_mode", sa.String(16), nullable=False, server_default="direct"),
    sa.Column("mfa_support", sa.Boolean(), nullable=False, server_default=sa.true()),
    sa.Column("property_mappings", JSON, nullable=False),
)

# authentik's permission "search full directory" (`search_full_directory` on the provider),
# granted per provider to a user or to a group (and so to its members and its descendants'
# members): exactly one of `user_pk` and `group_pk` is set.
ldap_search_grants = sa.Table(
    "ldap_search_grants",
    metadata,
    _uuid(),
    sa.Column(
        "provider",
        BIGINT,
        sa.ForeignKey("providers.pk", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    _user_ref(nullable=True),
    sa.Column(
        "group_pk",
        sa.String(36),
        sa.ForeignKey("groups.pk", ondelete="CASCADE"),
        nullable=True,
    ),
    _created(),
    sa.UniqueConstraint("provider", "user_pk"),
    sa.UniqueConstraint("provider", "group_pk"),
    sa.CheckConstraint("(user_pk IS NULL) <> (group_pk IS NULL)", name="one_grantee"),
)

# The core session an LDAP bind opened, and for which provider: the outpost names it
# (`session_id`, the session's digest) when it searches, changes a password or unbinds.
ldap_sessions = sa.Table(
    "ldap_sessions",
    metadata,
    sa.Column(
        "session_digest",
        sa.String(64),
        sa.ForeignKey("sessions.key_digest", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column(
        "provider",
        BIGINT,
        sa.ForeignKey("providers.pk", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    _user_ref(nullable=False, index=True),
    _created(),
)

# Which users and groups changed, in commit order: written by triggers on `users`, `groups`,
# `group_members`, `group_parents` and `ldap_search_grants` (migration 0015), so that no path
# of writing them can forget. The largest `seq` is the directory's generation; an LDAP outpost
# asks for what changed since the generation it holds. `seq` follows commit order (on PostgreSQL
# the triggers are deferred to the commit and serialised by an advisory lock). `object`: a
# user's pk (as text) or a group's pk. SQLite drops a table's triggers when a migration
# rebuilds the table: a migration that rebuilds one of those tables must create the triggers
# again (`test_migration_0015` checks they exist at head).
directory_changes = sa.Table(
    "directory_changes",
    metadata,
    sa.Column("seq", BIGINT, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(8), nullable=False),  # user | group
    sa.Column("object", sa.String(36), nullable=False),
    sa.Column("created", UTCDateTime(), nullable=False, server_default=sa.func.current_timestamp()),
    sqlite_autoincrement=True,
)

# LDAP sources --------------------------------------------------------------------------------

# Property mappings of LDAP sources: expressions over a directory entry (`ldap`, `dn`) whose
# dict result sets a synced user's or group's fields. `managed` marks the system defaults.
ldap_source_property_mappings = sa.Table(
    "ldap_source_property_mappings",
    metadata,
    _uuid(),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("expression", sa.Text(), nullable=False),
    sa.Column("managed", sa.String(200), nullable=True, unique=True),
    _created(),
)

# An LDAP source: a directory whose users and groups are synced in and whose users log in by
# binding to it. `bind_password_sealed` is sealed by the keyring (context `ldap_sources:<pk>`).
ldap_sources = sa.Table(
    "ldap_sources",
    metadata,
    _uuid(),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("slug", sa.String(50), nullable=False, unique=True),
    sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true()),
    sa.Column("promoted", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column(
        "authentication_flow",
        sa.String(36),
        sa.ForeignKey("flows.pk", ondelete="SET NULL"),
        nullable=True,
    ),
    sa.Column(
        "enrollment_flow",
        sa.String(36),
        sa.ForeignKey("flows.pk", ondelete="SET NULL"),
        nullable=True,
    ),
    sa.Column("policy_engine_mode", sa.String(8), nullable=False, server_default="any"),
    sa.Column("user_matching_mode", sa.String(16), nullable=False, server_default="identifier"),
    sa.Column("user_path_template", sa.String(200), nullable=False),
    sa.Column("icon", sa.String(2000), nullable=True),
    sa.Column("server_uri", sa.String(2000), nullable=False),
    _kp_ref("peer_certificate"),
    _kp_ref("client_certificate"),
    sa.Column("bind_cn", sa.String(1024), nullable=False, server_default=""),
    sa.Column("bind_password_sealed", sa.Text(), nullable=False, server_default=""),
    sa.Column("start_tls", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("sni", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("base_dn", sa.String(1024), nullable=False),
    sa.Column("additional_user_dn", sa.String(1024), nullable=False, server_default=""),
    sa.Column("additional_group_dn", sa.String(1024), nullable=False, server_default=""),
    sa.Column("user_object_filter", sa.String(4096), nullable=False),
    sa.Column("group_object_filter", sa.String(4096), nullable=False),
    sa.Column("group_membership_field", sa.String(200), nullable=False),
    sa.Column("user_membership_attribute", sa.String(200), nullable=False),
    sa.Column("object_uniqueness_field", sa.String(200), nullable=False),
    sa.Column(
        "password_login_update_internal_password",
        sa.Boolean(),
        nullable=False,
        server_default=sa.false(),
    ),
    sa.Column("sync_users", sa.Boolean(), nullable=False, server_default=sa.true()),
    sa.Column("sync_users_password", sa.Boolean(), nullable=False, server_default=sa.true()),
    sa.Column("sync_groups", sa.Boolean(), nullable=False, server_default=sa.true()),
    sa.Column(
        "sync_parent_group",
        sa.String(36),
        sa.ForeignKey("groups.pk", ondelete="SET NULL"),
        nullable=True,
    ),
    sa.Column("lookup_groups_from_user", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("delete_not_found_objects", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column(
        "sync_outgoing_trigger_mode", sa.String(16), nullable=False, server_default="deferred_end"
    ),
    sa.Column("sync_group_hierarchy", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("user_property_mappings", JSON, nullable=False),
    sa.Column("group_property_mappings", JSON, nullable=False),
    sa.Column("managed", sa.String(200), nullable=True),
    _created(),
)

# The last run of a source's sync: who runs it now (`running_since`, cleared at the end), how the
# last one ended, its counts and messages, and when one last succeeded.
ldap_source_syncs = sa.Table(
    "ldap_source_syncs",
    metadata,
    sa.Column(
        "source",
        sa.String(36),
        sa.ForeignKey("ldap_sources.pk", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("running_since", UTCDateTime(), nullable=True),
    sa.Column("started", UTCDateTime(), nullable=True),
    sa.Column("finished", UTCDateTime(), nullable=True),
    sa.Column("status", sa.String(32), nullable=True),
    sa.Column("counts", JSON, nullable=False),
    sa.Column("messages", JSON, nullable=False),
    sa.Column("last_successful", UTCDateTime(), nullable=True),
)


def _source_ref() -> sa.Column[str]:
    return sa.Column(
        "source",
        sa.String(36),
        sa.ForeignKey("ldap_sources.pk", ondelete="CASCADE"),
        nullable=False,
    )


# Which users and groups a source brought in (authentik's user and group source connections),
# keyed by the entry's `object_uniqueness_field`: a sync updates only these, and deletes only
# these (`delete_not_found_objects`); `dn` is where the entry was last seen (binds use it).
ldap_source_users = sa.Table(
    "ldap_source_users",
    metadata,
    sa.Column("pk", BIGINT, primary_key=True, autoincrement=True),
    _source_ref(),
    _user_ref(nullable=False, unique=True),
    sa.Column("identifier", sa.String(1024), nullable=False),
    sa.Column("dn", sa.String(2048), nullable=False),
    _created(),
    sa.Column("last_updated", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("source", "identifier"),
)

ldap_source_groups = sa.Table(
    "ldap_source_groups",
    metadata,
    sa.Column("pk", BIGINT, primary_key=True, autoincrement=True),
    _source_ref(),
    sa.Column(
        "group_pk",
        sa.String(36),
        sa.ForeignKey("groups.pk", ondelete="CASCADE"),
        nullable=False,
        unique=True,
    ),
    sa.Column("identifier", sa.String(1024), nullable=False),
    sa.Column("dn", sa.String(2048), nullable=False),
    _created(),
    sa.Column("last_updated", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("source", "identifier"),
)

# Outgoing mail ---------------------------------------------------------------------------------

# Every outgoing mail, written when its cause happens and delivered by the outbox drainer
# (`tasks.mail`), with retries: `status` queued -> sent or failed. `message` is the whole MIME
# message, sealed (`crypto.Keyring.seal`; recovery and verification mails carry a link that is a
# credential). `connection` is a stage's own SMTP server (no password), null for the global one.
# `origin` is what the events of its delivery say (user, client address, flow). A claimed row's
# `next_attempt` is its lease: a sender that dies leaves it due again when the lease ends.
mail_outbox = sa.Table(
    "mail_outbox",
    metadata,
    _uuid(),
    _created(),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("next_attempt", UTCDateTime(), nullable=False, index=True),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("expires", UTCDateTime(), nullable=True),
    sa.Column("recipient", sa.String(254), nullable=False),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("message", sa.Text(), nullable=False),
    sa.Column("connection", JSON, nullable=True),
    sa.Column("origin", JSON, nullable=False),
    sa.Column("last_error", sa.Text(), nullable=False),
    sa.Column("done", UTCDateTime(), nullable=True, index=True),
)
