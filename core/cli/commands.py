"""The `tessera` command's subcommands: server, worker, migrate, operator, outposts, admin tasks,
healthcheck (`tessera.core.cli.main` hands over here for all but `outpost`).

Parses the command line, loads the configuration (a bad value ends the process with one line
naming the key, exit status 2), configures logging, and hands over to `tessera.core.app`.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import html
import json
import os
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pydantic

from tessera.core import config, crypto, identity, logs, mail, store, wire
from tessera.core.app import serving, work
from tessera.core.cli import outposts

_DURATION = re.compile(r"^(\d+)\s*(m|min|minutes?|h|hours?|d|days?)$")


def _load(args: argparse.Namespace) -> config.Settings:
    settings = config.load(args.config)
    if getattr(args, "worker_parent", None) is None:  # once, not again in serving workers
        for warning in settings.warnings:  # unknown keys: typos, most often
            print(f"tessera: warning: {warning}", file=sys.stderr)
    logs.configure(settings.log_level)
    for secret in settings.secret_values():
        logs.register_secret(secret)
    crypto.passwords.configure(**settings.password_hashing.model_dump())
    return settings


def _version() -> str:
    from importlib import metadata

    from tessera.core.api.admin import AUTHENTIK_VERSION

    try:
        own = metadata.version("tessera")
    except metadata.PackageNotFoundError:
        own = "unknown"
    return f"tessera {own} (speaks authentik {AUTHENTIK_VERSION})"


def _shown(value: Any) -> str:
    if isinstance(value, pydantic.SecretStr):
        return "********" if value.get_secret_value() else '""'
    if isinstance(value, Path):
        value = str(value)
    return json.dumps(value)


def cmd_dump_config(args: argparse.Namespace) -> int:
    """Every setting's effective value (secrets masked) and where it came from."""
    settings = config.load(args.config)
    for warning in settings.warnings:
        print(f"tessera: warning: {warning}", file=sys.stderr)
    origins = settings.origins
    for key in config.setting_keys():
        value: Any = settings
        for part in key.split("."):
            value = getattr(value, "from_" if part == "from" else part)
        origin = origins.get(key, "default")
        if key == "secret_key" and origin == "default":
            origin = f"generated, {settings.data_dir / 'secret_key'}"
        print(f"{key} = {_shown(value)}  # {origin}")
    return 0


def _run(coro: Coroutine[Any, Any, int | None]) -> int:
    return asyncio.run(coro) or 0


async def _open(settings: config.Settings) -> store.Store:
    db = store.Store(settings)
    await db.open()
    await db.migrate()
    return db


def cmd_server(args: argparse.Namespace) -> int:
    settings = _load(args)
    if args.worker_parent is not None:  # started by the supervisor (`app.serving`)
        worker = serving.serve_worker(
            settings, args.worker_index, args.worker_metrics, args.worker_parent
        )
        return _run(worker)
    return serving.run(settings)


def cmd_worker(args: argparse.Namespace) -> int:
    settings = _load(args)
    return _run(work(settings))


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = _load(args)

    async def go() -> int:
        db = await _open(settings)
        await db.close()
        print("Migrations applied.")
        return 0

    return _run(go())


def cmd_test_email(args: argparse.Namespace) -> int:
    """Send one message through the configured SMTP server, now (authentik's `ak test_email`)."""
    settings = _load(args)
    if not wire.emails.valid(args.address):
        print(f"tessera: {args.address!r}: {wire.emails.MESSAGE}", file=sys.stderr)
        return 2
    server = f"{settings.email.host}:{settings.email.port}"
    body = f"This is a test message from Tessera, sent through {server}."
    msg = mail.message(
        settings.email.from_,
        args.address,
        "Tessera test email",
        body,
        f"<p>{html.escape(body)}</p>",
    )
    try:
        _run(mail.send(settings.email, msg))
    except mail.MailError:  # the server's words are in the log line above
        print(f"tessera: the email could not be sent through {server}", file=sys.stderr)
        return 1
    print(f"Sent a test email to {args.address} through {server}.")
    return 0


def _keyring(settings: config.Settings) -> crypto.Keyring:
    assert settings.secret_key is not None
    return crypto.Keyring(settings.secret_key.get_secret_value())


def cmd_recovery_key(args: argparse.Namespace) -> int:
    settings = _load(args)
    if not 1 <= args.minutes <= 60 * 24 * 365:
        print("minutes: must be between 1 and 525600", file=sys.stderr)
        return 2

    async def go() -> int:
        db = await _open(settings)
        try:
            async with db.transaction() as tx:
                key = await identity.bootstrap.recovery_key(
                    tx, _keyring(settings), args.username, args.minutes
                )
        finally:
            await db.close()
        if key is None:
            print(f"No user named {args.username!r}.", file=sys.stderr)
            return 1
        base = settings.web.public_url.rstrip("/")
        print(f"Store this link safely, as it will allow anyone to access {args.username}.")
        print(f"{base}/recovery/use-token/{key}/")
        return 0

    return _run(go())


def _expiry(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    match = _DURATION.match(value.strip())
    if match:
        amount, unit = int(match[1]), match[2][0]
        delta = {"m": dt.timedelta(minutes=amount), "h": dt.timedelta(hours=amount)}.get(
            unit, dt.timedelta(days=amount)
        )
        return dt.datetime.now(dt.UTC) + delta
    parsed = dt.datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def cmd_create_token(args: argparse.Namespace) -> int:
    settings = _load(args)
    try:
        expires = _expiry(args.expires)
    except ValueError:
        print(
            "--expires: use a duration such as 30m, 12h, 90d, or an ISO 8601 time", file=sys.stderr
        )
        return 2

    async def go() -> int:
        db = await _open(settings)
        try:
            async with db.transaction() as tx:
                user = await identity.users.find_by_username(tx, args.username)
                if user is None:
                    print(f"No user named {args.username!r}.", file=sys.stderr)
                    return 1
                identifier = args.identifier or f"cli-{user['pk']}-{crypto.secrets.new_token(8)}"
                try:
                    body = wire.core.TokenRequest(
                        identifier=identifier,
                        intent="api",
                        expires=expires,
                        expiring=expires is not None,
                        description=args.description,
                    )
                except pydantic.ValidationError as exc:
                    error = exc.errors()[0]
                    print(f"--{error['loc'][0]}: {error['msg']}", file=sys.stderr)
                    return 2
                # The server's own command line may name any identifier (as bootstrap does).
                _, key = await identity.tokens.create(
                    tx, _keyring(settings), body, user_pk=user["pk"], system=True
                )
        finally:
            await db.close()
        print(key)
        return 0

    return _run(go())


def cmd_operator(args: argparse.Namespace) -> int:
    from tessera.operator import main as operator  # Kopf is loaded only for this command

    options = operator.Options(
        namespaces=tuple(args.namespace),
        health=args.health,
        metrics=args.metrics,
        resync_seconds=args.resync_seconds,
        retry_base_seconds=args.retry_seconds,
        concurrency=args.concurrency,
    )
    return operator.run(options)


def cmd_ensure_secrets(args: argparse.Namespace) -> int:
    from tessera.operator import secretgen  # the Kubernetes client is loaded only for this command

    return secretgen.main(args.namespace, args.secret, args.label)


def cmd_outpost(args: argparse.Namespace) -> int:
    return outposts.run(args.type, list(args.args))


def _local_health_url() -> str:
    """The live endpoint of this container's server, from the listen setting (no full load)."""
    listen = os.environ.get("TESSERA_LISTEN__HTTP") or os.environ.get(
        "AUTHENTIK_LISTEN__HTTP", "127.0.0.1:9000"
    )
    try:
        listen = config.resolve("AUTHENTIK_LISTEN__HTTP", listen)  # env:// and file:// too
    except config.ConfigError:
        listen = "127.0.0.1:9000"
    port = listen.rpartition(":")[2] or "9000"
    return f"http://127.0.0.1:{port}/-/health/live/"


def cmd_healthcheck(args: argparse.Namespace) -> int:
    url = args.url or _local_health_url()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    try:
        with opener.open(url, timeout=5) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError, ValueError):
        return 1


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="tessera",
        description="Tessera: identity provider and single sign-on, compatible with authentik.",
    )
    top.add_argument("--config", type=Path, help="YAML file with settings (same keys as the env)")
    top.add_argument("--version", action="version", version=_version())
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str, func: Callable[[argparse.Namespace], int], help_: str
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=func)
        return p

    server = add(
        "server", cmd_server, "Run the core server (HTTP API, flows, embedded maintenance)."
    )
    # A serving worker of the supervisor (`app.serving`): not for people to type.
    server.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)
    server.add_argument("--worker-metrics", type=Path, help=argparse.SUPPRESS)
    server.add_argument("--worker-parent", type=int, help=argparse.SUPPRESS)
    add("worker", cmd_worker, "Run the background worker (scheduled maintenance).")
    add("migrate", cmd_migrate, "Apply database migrations and exit.")
    op = add(
        "operator",
        cmd_operator,
        "Run the Kubernetes operator: reconcile tessera.dev resources into the core.",
    )
    op.add_argument(
        "--namespace",
        action="append",
        default=[],
        help="watch this namespace (repeatable); default: every namespace",
    )
    op.add_argument("--health", default="0.0.0.0:8080", help="liveness probe /healthz host:port")
    op.add_argument("--metrics", default="0.0.0.0:9300", help="Prometheus /metrics host:port")
    op.add_argument(
        "--resync-seconds",
        type=float,
        default=300.0,
        help="how often every resource is checked again for drift in the core (default 300)",
    )
    op.add_argument(
        "--retry-seconds",
        type=float,
        default=5.0,
        help="first retry delay while the core is unavailable; doubles up to 300 (default 5)",
    )
    op.add_argument(
        "--concurrency",
        type=int,
        default=16,
        help="reconciles running at once, at most (default 16)",
    )
    ensure = add(
        "ensure-secrets",
        cmd_ensure_secrets,
        "Create Kubernetes Secrets of generated values when absent, add the keys they lack, and "
        "never change a value (the Helm chart's pre-install hook).",
    )
    ensure.add_argument("--namespace", required=True, help="the Secrets' namespace")
    ensure.add_argument(
        "--secret",
        action="append",
        default=[],
        metavar="NAME:KEY=LENGTH[,KEY=LENGTH...]",
        help="a Secret and its generated keys (repeatable)",
    )
    ensure.add_argument(
        "--label", action="append", default=[], metavar="KEY=VALUE", help="label new Secrets"
    )
    outpost = add(
        "outpost",
        cmd_outpost,
        "Run an outpost (proxy, ldap): settings from AUTHENTIK_HOST, AUTHENTIK_TOKEN, ...",
    )
    outpost.add_argument("type", help="the outpost type: proxy or ldap")
    outpost.add_argument(
        "args", nargs=argparse.REMAINDER, help="arguments for the outpost (see its --help)"
    )
    add(
        "dump-config",
        cmd_dump_config,
        "Print every setting's effective value (secrets masked) and where it came from.",
    )
    health = add(
        "healthcheck", cmd_healthcheck, "Exit 0 when the local server answers /-/health/live/."
    )
    health.add_argument("--url", help="default: /-/health/live/ on the AUTHENTIK_LISTEN__HTTP port")

    admin = sub.add_parser(
        "admin", help="Administrative tasks.", description="Administrative tasks."
    )
    admin_sub = admin.add_subparsers(dest="admin_command", required=True, metavar="TASK")
    rec = admin_sub.add_parser(
        "create-recovery-key",
        help="Print a single-use link that logs a user in.",
        description="Print a URL /recovery/use-token/<key>/ that logs USERNAME in once, "
        "valid for MINUTES minutes.",
    )
    rec.add_argument("minutes", type=int, help="how long the link stays valid")
    rec.add_argument("username", help="the user to log in")
    rec.set_defaults(func=cmd_recovery_key)
    tok = admin_sub.add_parser(
        "create-token",
        help="Print a new API token for a user.",
        description="Create an API token for USERNAME and print its key.",
    )
    tok.add_argument("username")
    tok.add_argument("--expires", help="duration (30m, 12h, 90d) or ISO 8601 time; default: never")
    tok.add_argument("--identifier", help="token identifier (default: generated)")
    tok.add_argument("--description", default="created with tessera admin create-token")
    tok.set_defaults(func=cmd_create_token)
    mailer = admin_sub.add_parser(
        "test-email",
        help="Send a test email through the configured SMTP server.",
        description="Send one message to ADDRESS through the AUTHENTIK_EMAIL__* server, now.",
    )
    mailer.add_argument("address")
    mailer.set_defaults(func=cmd_test_email)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except config.ConfigError as exc:
        print(f"tessera: configuration error: {exc}", file=sys.stderr)
        return 2
    except store.StoreUnavailable as exc:
        print(f"tessera: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())
