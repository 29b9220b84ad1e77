"""authentik's documented configuration keys, as dotted paths (`postgresql.sslmode` is
`AUTHENTIK_POSTGRESQL__SSLMODE`), and which of them Tessera does not have.

`load` refuses a key of `UNSUPPORTED` at start with one line naming it, warns about a key that is
neither Tessera's nor authentik's (a typo, most often), and passes over `NOT_SETTINGS`: variables
with the `AUTHENTIK_` prefix that are not server settings (the outposts' connection, the
reference compose file's image tag and ports).
"""

from __future__ import annotations

# The keys of authentik's configuration reference that Tessera reads (checked by the tests
# against the `Settings` model: each of these is a field).
SUPPORTED = frozenset(
    {
        "secret_key",
        "log_level",
        "bootstrap_password",
        "bootstrap_token",
        "bootstrap_email",
        "postgresql.host",
        "postgresql.port",
        "postgresql.name",
        "postgresql.user",
        "postgresql.password",
        "postgresql.sslmode",
        "postgresql.sslrootcert",
        "postgresql.sslcert",
        "postgresql.sslkey",
        "redis.host",
        "redis.port",
        "redis.db",
        "redis.username",
        "redis.password",
        "redis.tls",
        "redis.tls_reqs",
        "redis.tls_ca_cert",
        "cache.timeout_policies",
        "listen.http",
        "listen.metrics",
        "listen.trusted_proxy_cidrs",
        "web.workers",
        "email.host",
        "email.port",
        "email.username",
        "email.password",
        "email.use_tls",
        "email.use_ssl",
        "email.timeout",
        "email.from",
        "error_reporting.enabled",
        "disable_startup_analytics",
        "disable_update_check",
        "outposts.disable_embedded_outpost",
    }
)

# Documented by authentik, not offered by Tessera. A key ending in "." stands for every key
# below it.
UNSUPPORTED = frozenset(
    {
        "debug",
        "cookie_domain",
        "avatars",
        "default_user_change_name",
        "default_user_change_email",
        "default_user_change_username",
        "gdpr_compliance",
        "impersonation",
        "footer_links",
        "blueprints_dir",
        "cert_discovery_dir",
        "skip_migrations",
        "compliance.",
        "postgresql.use_pgbouncer",
        "postgresql.use_pgpool",
        "postgresql.conn_max_age",
        "postgresql.conn_health_checks",
        "postgresql.conn_options",
        "postgresql.disable_server_side_cursors",
        "postgresql.default_schema",
        "postgresql.read_replicas.",
        "postgresql.replicas.",
        "redis.cache_timeout",
        "redis.cache_timeout_flows",
        "redis.cache_timeout_policies",
        "redis.cache_timeout_reputation",
        "cache.url",
        "cache.timeout",
        "cache.timeout_flows",
        "cache.timeout_reputation",
        "channel.",
        "broker.",
        "result_backend.",
        "listen.debug",
        "listen.debug_py",
        "listen.radius",
        "web.threads",
        "web.path",
        "web.timeout_http_read_header",
        "web.timeout_http_read",
        "web.timeout_http_write",
        "web.timeout_http_idle",
        "worker.concurrency",
        "worker.processes",
        "worker.threads",
        "worker.consumer_listen_timeout",
        "worker.task_max_retries",
        "worker.task_default_time_limit",
        "worker.task_purge_interval",
        "worker.task_expiration",
        "worker.scheduler_interval",
        "sessions.unauthenticated_age",
        "error_reporting.sentry_dsn",
        "error_reporting.environment",
        "error_reporting.send_pii",
        "error_reporting.extra_args",
        "error_reporting.sample_rate",
        "email.template_dir",
        "outposts.container_image_base",
        "outposts.docker_image_base",
        "outposts.discover",
        "outposts.disable_embedded_outpost_ssl_verify",
        "ldap.",
        "reputation.",
        "events.context_processors.",
        "storage.",
        "media.",
    }
)

# `AUTHENTIK_*` variables that are not server settings: read by the outposts
# (`outposts.common.settings`), or by the reference compose file.
NOT_SETTINGS = frozenset(
    {
        "host",
        "host_browser",
        "token",
        "insecure",
        "state_dir",
        "listen.https",
        "listen.ldap",
        "listen.ldaps",
        "tag",
        "image",
        "port_http",
        "port_https",
        "config_file",  # TESSERA_CONFIG_FILE: set by `--config`
        # Removed in authentik 2025.4 (sessions live in the database), which ignores it since.
        "session_storage",
        "outpost_image",  # TESSERA_OUTPOST_IMAGE: read by the operator
    }
)


def unsupported(path: str) -> bool:
    """True when `path` (dotted, lower case) is an authentik key Tessera does not have."""
    if path in UNSUPPORTED:
        return True
    return any(key.endswith(".") and path.startswith(key) for key in UNSUPPORTED)
