"""The flow executor: plans a flow, renders the current stage's challenge, applies responses.

Driven by `GET`/`POST /api/v3/flows/executor/<slug>/` and by the HTML pages under `/if/flow/`.
State lives in the cache under the browser session's digest (`FlowState`, 30 minutes). Replies
are authentik's challenge shapes: the stage's `component` with `flow_info`, `pending_user` and
`response_errors`; `xak-flow-redirect` with `to` at the end; `ak-stage-access-denied` when denied.
Logging in rotates the session key (no fixation) and moves the flow state to the new key.

A stage whose own code raises something unexpected ends the flow with authentik's
`ak-stage-flow-error` (a generic message and a request id), a `system_exception` event and the
traceback in the log; the flow state is dropped, so the next request starts again. Errors with a
wire form of their own (the API's, the store's and the cache's outages) pass through untouched.

A stage may insert another stage right after itself while the flow runs (`FlowState.insert`, the
validate stage's `configure` action); the planner serves such entries like bindings.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pydantic
import structlog

from tessera.core import cache, crypto, errors, events, logs, store, wire
from tessera.core.flows import definitions, metrics, planner, redirects
from tessera.core.identity import avatars, sessions, users
from tessera.core.stages import base
from tessera.core.stages import email as email_stage
from tessera.core.store import crud

STATE_TTL = 30 * 60
DONE_TTL = 5 * 60  # how long a provider has to pick up a finished flow's decision
DONE_KEY = "done_key"
DENIED = "ak-stage-access-denied"
REDIRECT = "xak-flow-redirect"
FLOW_ERROR = "ak-stage-flow-error"
FLOW_ERROR_MESSAGE = (
    "Something went wrong while running this flow. Start again; if it happens again, give your "
    "administrator the request id."
)
SYSTEM_EXCEPTION = "system_exception"  # authentik's event action for this
MESSAGE_LIMIT = 200  # characters of the exception's message kept in the event
# Deliberate errors with a wire form of their own: the HTTP edge renders them as today (the
# store's outage as 503). They are not a stage's bug, so they never become a flow error.
PASS_THROUGH: tuple[type[Exception], ...] = (
    errors.ApiError,
    errors.NotFound,
    errors.Conflict,
    store.StoreUnavailable,
    cache.CacheUnavailable,
)

log = structlog.get_logger(__name__)


@dataclass
class Browser:
    """The browser session as the HTTP layer sees it."""

    key: str  # the cookie value (an anonymous key until login)
    user: dict[str, Any] | None
    client_ip: str
    user_agent: str
    secure: bool
    memo: dict[tuple[str, object], tuple[int, dict[str, Any] | None]] = field(
        default_factory=dict
    )  # rows read during this request (see base.Run.user)
    cookies: Mapping[str, str] = field(default_factory=dict)  # the request's, for stages
    method: str = "GET"  # the request's method and path, for the login events' `http_request`
    path: str = ""
    base_url: str = ""  # this server's public base URL, as the request reached it


@dataclass
class Reply:
    body: dict[str, Any]
    # Set this cookie: the key and its Max-Age (None: a browser session).
    new_session: tuple[str, dt.timedelta | None] | None = None
    ended_session: bool = False  # clear the cookie
    cookies: list[base.Cookie] = field(default_factory=list)  # other cookies stages set

    def with_body(self, body: dict[str, Any]) -> Reply:
        return dataclasses.replace(self, body=body)


class StageCrashed(Exception):
    """A stage's own code raised something unexpected; raised and caught inside the executor."""

    def __init__(self, stage_row: dict[str, Any], cause: Exception) -> None:
        super().__init__(type(cause).__name__)
        self.stage_row = stage_row
        self.cause = cause


@contextlib.contextmanager
def _stage_code(stage_row: dict[str, Any]) -> Iterator[None]:
    """Around a call into a stage's hooks: turns what the stage did not mean to raise into
    `StageCrashed`. asyncio.CancelledError is not an Exception and passes, as PASS_THROUGH."""
    try:
        yield
    except PASS_THROUGH:
        raise
    except Exception as exc:  # the flow's edge for stage code (authentik's handle_exception)
        raise StageCrashed(stage_row, exc) from exc


def _state_key(session_key: str, slug: str) -> str:
    return f"flow:{crypto.secrets.sha256_hex(session_key)}:{slug}"


class Executor:
    def __init__(self, services: base.Services) -> None:
        self.services = services
        self.definitions = definitions.Definitions(services.store)
        # Called after a flow logged a user out, with the ended session's digest and the user
        # (providers send back-channel logout notices from here). Listeners must not raise.
        self.logout_listeners: list[Callable[[str, dict[str, Any]], Awaitable[None]]] = []
        # Called when a flow is about to log a user out, with the stage's run and the browser,
        # while the session still exists: a provider may insert steps into the plan that run
        # after the logout (the SAML provider's front-channel logout, authentik's
        # `flow_pre_user_logout`). Unexpected errors are the stage's (`ak-stage-flow-error`).
        self.before_logout: list[Callable[[base.Run, Browser], Awaitable[None]]] = []

    async def get(self, slug: str, browser: Browser, query: dict[str, str]) -> Reply:
        """The current challenge; plans the flow when none is in progress."""
        snapshot = await self.definitions.get()
        flow = _flow(snapshot, slug)
        with metrics.execution(flow["slug"], "get"):
            return await self._get(snapshot, flow, browser, query)

    async def _get(
        self,
        snapshot: definitions.Snapshot,
        flow: dict[str, Any],
        browser: Browser,
        query: dict[str, str],
    ) -> Reply:
        slug = flow["slug"]
        state = await self._load(browser, slug)
        if "flow_token" in query:
            resumed = await email_stage.redeem(self.services, query["flow_token"])
            if resumed is None or resumed.get("slug") != slug:
                denied = await self._denied(flow, "This link is invalid or has expired.", browser)
                return Reply(denied)
            state = base.FlowState.load(resumed)
            await email_stage.activate(self.services, state.context)
        elif state is None or query.get("restart") == "1":
            wanted = query.get("next", "")
            target = redirects.safe_next(wanted, await self._launch_urls() if wanted else [])
            planned = await planner.plan(
                self.services,
                snapshot,
                flow,
                browser.user,
                browser.client_ip,
                redirected=bool(wanted) and target == wanted,
            )
            if isinstance(planned, base.Outcome):
                return Reply(await self._denied(flow, planned.message, browser))
            state = planned
            state.next = target
            if "itoken" in query:  # an invitation link; the invitation stage checks it
                state.context["invitation"] = query["itoken"][:64]
        return await self._advance(snapshot, flow, state, browser, None)

    async def start(
        self,
        slug: str,
        browser: Browser,
        *,
        context: dict[str, Any],
        next_path: str,
        done_key: str,
    ) -> str:
        """Plan `slug` for this browser on behalf of a provider (an OAuth2 authorization, say)
        and keep it as the browser's flow in progress; the browser is then sent to the flow's
        page. The plan carries `context` (e.g. `application` and `consent_permissions` for the
        consent stage), runs for the logged-in user if there is one, and ends at `next_path`, a
        path on this server. When the flow finishes, `completed(browser, done_key)` returns what
        it decided, once. Returns "" when planned, else why the flow refused this browser."""
        snapshot = await self.definitions.get()
        flow = _flow(snapshot, slug)
        planned = await planner.plan(
            self.services, snapshot, flow, browser.user, browser.client_ip, redirected=True
        )
        if isinstance(planned, base.Outcome):
            return planned.message or "Access denied."
        planned.context.update(context)
        planned.context[DONE_KEY] = done_key
        planned.pending_user = browser.user["pk"] if browser.user else None
        planned.next = redirects.safe_next(next_path, [])
        await self._save(browser, planned)
        return ""

    async def completed(self, browser: Browser, done_key: str) -> dict[str, Any] | None:
        """What a flow begun by `start` decided, if it finished for this browser: `user` (pk)
        and the flow's `context`. Single use; None when it has not finished (or expired)."""
        key = _done_cache_key(done_key)
        record = await self.services.cache.get(key)
        if not isinstance(record, dict):
            return None
        if not crypto.secrets.equal(
            str(record.get("session", "")), crypto.secrets.sha256_hex(browser.key)
        ):
            return None  # finished in another browser, which may still pick it up
        taken = await self.services.cache.pop(key)  # of concurrent callers, one gets it
        return taken if isinstance(taken, dict) else None

    async def post(self, slug: str, browser: Browser, body: Any) -> Reply:
        """Apply a challenge response and return what comes next."""
        snapshot = await self.definitions.get()
        flow = _flow(snapshot, slug)
        with metrics.execution(flow["slug"], "post"):
            state = await self._load(browser, flow["slug"])
            if state is None:
                return await self._get(snapshot, flow, browser, {})
            if not isinstance(body, dict):
                body = {}
            return await self._advance(snapshot, flow, state, browser, body)

    async def abandon(self, slug: str, browser: Browser) -> None:
        """Forget this browser's flow in progress, if any: for a caller that drives a flow by
        itself (the LDAP bind) and stops at a refusal the flow would let it retry."""
        await self._drop(browser, slug)

    async def _launch_urls(self) -> list[str]:
        async with self.services.store.read() as tx:
            apps = await crud.all_rows(tx, "applications")
        return [a["meta_launch_url"] for a in apps if a["meta_launch_url"].startswith("http")]

    async def _load(self, browser: Browser, slug: str) -> base.FlowState | None:
        data = await self.services.cache.get(_state_key(browser.key, slug))
        return base.FlowState.load(data) if isinstance(data, dict) else None

    async def _save(self, browser: Browser, state: base.FlowState) -> None:
        await self.services.cache.set(_state_key(browser.key, state.slug), state.dump(), STATE_TTL)

    async def _drop(self, browser: Browser, slug: str) -> None:
        await self.services.cache.delete(_state_key(browser.key, slug))

    async def _advance(
        self,
        snapshot: definitions.Snapshot,
        flow: dict[str, Any],
        state: base.FlowState,
        browser: Browser,
        response: dict[str, Any] | None,
    ) -> Reply:
        reply = Reply({})
        try:
            return await self._steps(snapshot, flow, state, browser, response, reply)
        except StageCrashed as crash:
            body = await self._crashed(flow, state, browser, crash, response)
            return reply.with_body(body)

    async def _steps(
        self,
        snapshot: definitions.Snapshot,
        flow: dict[str, Any],
        state: base.FlowState,
        browser: Browser,
        response: dict[str, Any] | None,
        reply: Reply,
    ) -> Reply:
        while state.index < len(state.bindings):
            step = await planner.current(
                self.services, snapshot, state, browser.user, browser.client_ip
            )
            if isinstance(step, base.Outcome):  # a binding policy failed to evaluate
                await self._drop(browser, state.slug)
                return reply.with_body(await self._denied(flow, step.message, browser, state))
            if step is None:  # the binding's policies do not apply: skip it
                state.index += 1
                response = None  # the answer was for the skipped stage, not the next one
                continue
            run = self._run(state, browser, step)
            outcome = await self._respond(step, run, response)
            response = None
            if outcome is None:  # a challenge to show
                body = await self._challenge(flow, state, step, run, {})
                await self._save(browser, state)  # after rendering: challenge() may note things
                return reply.with_body(body)
            await self._side_effects(run, browser, reply)
            if outcome.kind == "next":
                state.index += 1
                continue
            return await self._finish(snapshot, flow, state, browser, step, run, outcome, reply)
        await self._drop(browser, state.slug)
        if state.context.get(DONE_KEY):
            await self._record_done(state, browser)
        return reply.with_body(_redirect(state.next))

    async def _record_done(self, state: base.FlowState, browser: Browser) -> None:
        user = state.pending_user or (browser.user["pk"] if browser.user else None)
        context = {k: v for k, v in state.context.items() if k != DONE_KEY}
        record = {
            "user": user,
            "slug": state.slug,
            "session": crypto.secrets.sha256_hex(browser.key),
            "context": context,
        }
        await self.services.cache.set(
            _done_cache_key(str(state.context[DONE_KEY])), record, DONE_TTL
        )

    def _run(self, state: base.FlowState, browser: Browser, step: planner.Step) -> base.Run:
        return base.Run(
            services=self.services,
            state=state,
            session_user=browser.user,
            client_ip=browser.client_ip,
            user_agent=browser.user_agent,
            secure=browser.secure,
            stage_pk=step.stage_row["pk"],
            stage_name=step.stage_row["name"],
            memo=browser.memo,
            cookies=browser.cookies,
            inserted=state.insertion(),
            method=browser.method,
            path=browser.path,
        )

    async def _respond(
        self, step: planner.Step, run: base.Run, response: dict[str, Any] | None
    ) -> base.Outcome | None:
        stage = step.stage
        method = "get" if response is None else "post"
        with (
            _stage_code(step.stage_row),
            metrics.timed(metrics.STAGE_TIME, stage.component, method),
        ):
            if stage.Response is None or not stage.asks():
                return await stage.on_valid(run, base.ChallengeResponse())
            if response is None:
                return await stage.before(run)
            try:
                parsed = base.response_model(type(stage)).model_validate(response)
            except pydantic.ValidationError as exc:
                return await stage.on_invalid(run, _errors(exc))
            return await stage.on_valid(run, parsed)

    async def _finish(
        self,
        snapshot: definitions.Snapshot,
        flow: dict[str, Any],
        state: base.FlowState,
        browser: Browser,
        step: planner.Step,
        run: base.Run,
        outcome: base.Outcome,
        reply: Reply,
    ) -> Reply:
        if outcome.kind == "retry":
            action = step.binding_row["invalid_response_action"]
            if action != "retry":  # restart, or restart_with_context
                state.index = 0
                state.drop_insertions()  # stages inserted on the way are inserted again if due
                if action == "restart":
                    state.context, state.pending_user = {}, None
                return await self._steps(snapshot, flow, state, browser, None, reply)
            if not step.stage.asks():
                return await self._back(snapshot, flow, state, browser, outcome, reply)
            body = await self._challenge(flow, state, step, run, outcome.errors)
            await self._save(browser, state)
            return reply.with_body(body)
        await self._drop(browser, state.slug)
        if outcome.kind == "redirect":
            body = _redirect(outcome.to)
        else:
            body = await self._denied(flow, outcome.message, browser, state, run)
        return reply.with_body(body)

    async def _back(
        self,
        snapshot: definitions.Snapshot,
        flow: dict[str, Any],
        state: base.FlowState,
        browser: Browser,
        outcome: base.Outcome,
        reply: Reply,
    ) -> Reply:
        """A stage without a page refused its input (e.g. user_write: username taken): show the
        errors on the nearest earlier stage that has a page (usually the prompt)."""
        while state.index > 0:
            state.index -= 1
            step = await planner.current(
                self.services, snapshot, state, browser.user, browser.client_ip
            )
            if isinstance(step, planner.Step) and step.stage.asks():
                run = self._run(state, browser, step)
                body = await self._challenge(flow, state, step, run, outcome.errors)
                await self._save(browser, state)
                return reply.with_body(body)
        await self._drop(browser, state.slug)
        return reply.with_body(await self._denied(flow, "Invalid input.", browser, state))

    async def _challenge(
        self,
        flow: dict[str, Any],
        state: base.FlowState,
        step: planner.Step,
        run: base.Run,
        response_errors: dict[str, list[dict[str, str]]],
    ) -> dict[str, Any]:
        timer = metrics.timed(metrics.STAGE_TIME, step.stage.component, "get")
        with _stage_code(step.stage_row), timer:
            fields = await step.stage.challenge(run)
            body = {
                "component": step.stage.component,
                "flow_info": _flow_info(flow),
                "response_errors": response_errors,
                **fields,
            }
            if wire.challenges.is_with_user_info(step.stage.component):
                body.update(await self._user_info(state, run.session_user, run))
            # A stage's challenge that is not authentik's shape is the stage's bug.
            return wire.challenges.render(body)

    async def _crashed(
        self,
        flow: dict[str, Any],
        state: base.FlowState,
        browser: Browser,
        crash: StageCrashed,
        posted: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """Log the traceback, drop the flow state, record `system_exception` in a transaction of
        its own (the stage's, if any, has rolled back) and answer `ak-stage-flow-error`."""
        request_id = uuid.uuid4().hex
        row = crash.stage_row
        stage = {"pk": row["pk"], "name": row["name"], "kind": row["kind"]}
        log.error(
            "stage failed",
            request_id=request_id,
            flow=state.slug,
            stage=stage,
            exc_info=crash.cause,
        )
        await self._drop(browser, state.slug)
        # SECURITY: the event holds the exception's type and a short message with every value
        # the client posted (and the flow's secret-looking context) masked; never a traceback.
        hidden = _secret_strings(posted) + _secret_strings(state.context, secret_only=True)
        async with self.services.store.transaction() as tx:
            await events.record(
                tx,
                SYSTEM_EXCEPTION,
                user=browser.user,
                client_ip=browser.client_ip,
                context={
                    "message": "System exception during flow execution.",
                    "flow": state.slug,
                    "stage": stage,
                    "exception": _summary(crash.cause, hidden),
                    "request_id": request_id,
                },
                retention=dt.timedelta(days=self.services.settings.events.retention_days),
                app="tessera.core.flows",
            )
        return wire.challenges.render(
            {
                "component": FLOW_ERROR,
                "flow_info": _flow_info(flow),
                "error": FLOW_ERROR_MESSAGE,
                "request_id": request_id,
                "response_errors": {},
            }
        )

    async def _denied(
        self,
        flow: dict[str, Any],
        message: str,
        browser: Browser,
        state: base.FlowState | None = None,
        run: base.Run | None = None,
    ) -> dict[str, Any]:
        body = {
            "component": DENIED,
            "flow_info": _flow_info(flow),
            "error_message": message or "Access denied.",
            "response_errors": {},
            **await self._user_info(state, browser.user, run),
        }
        return wire.challenges.render(body)

    async def _user_info(
        self,
        state: base.FlowState | None,
        session_user: dict[str, Any] | None,
        run: base.Run | None = None,
    ) -> dict[str, str]:
        """authentik's `pending_user` and `pending_user_avatar`: who the flow is about (the
        pending user, else the logged-in one), "" and the default picture when nobody is."""
        typed = state.context.get("pending_user_identifier") if state is not None else None
        if typed:
            # SECURITY: what was typed, with the default picture, whether or not the account
            # exists (`pretend_user_exists`): the account's own avatar (its name's initials, a
            # picture from its attributes) would tell a real account from a made-up one.
            return {"pending_user": str(typed), "pending_user_avatar": avatars.DEFAULT_PICTURE}
        user = session_user
        pending = state.pending_user if state is not None else None
        if pending is not None and (user is None or user["pk"] != pending):
            if run is not None:
                user = await run.user(pending)
            else:
                async with self.services.store.read() as tx:
                    user = await crud.find(tx, users.TABLE, pk=pending)
        if user is None:
            return {"pending_user": "", "pending_user_avatar": avatars.DEFAULT_PICTURE}
        async with self.services.store.read() as tx:
            modes = await users.avatar_modes(tx)
        return {
            "pending_user": user["username"],
            "pending_user_avatar": avatars.avatar(user, modes),
        }

    async def _side_effects(self, run: base.Run, browser: Browser, reply: Reply) -> None:
        reply.cookies.extend(run.set_cookies)
        run.set_cookies.clear()
        if run.login is not None:
            login, run.login = run.login, None
            key, user = await self._login(run, browser, login.user_pk, login.ttl)
            await self._drop(browser, run.state.slug)
            browser.key, browser.user = key, user
            max_age = login.ttl if login.persistent else None
            reply.new_session, reply.ended_session = (key, max_age), False
        if run.logout:
            run.logout = False
            if browser.user is not None:
                with _stage_code({"pk": run.stage_pk, "name": run.stage_name, "kind": "logout"}):
                    for prepare in self.before_logout:
                        await prepare(run, browser)
            await self._logout(run, browser)
            reply.new_session, reply.ended_session = None, True
            if run.state.index + 1 < len(run.state.bindings):
                # The plan goes on after the logout: its state moves to a fresh anonymous key,
                # which the browser gets as its cookie instead of none.
                await self._drop(browser, run.state.slug)
                browser.key = sessions.anonymous_key()

    async def _login(
        self, run: base.Run, browser: Browser, user_pk: int, ttl: dt.timedelta
    ) -> tuple[str, dict[str, Any]]:
        async with self.services.store.transaction() as tx:
            if run.state.context.get("terminate_other_sessions"):
                await sessions.end_all(tx, user_pk)
            if browser.user is not None:
                await sessions.end(tx, browser.key)
            key, user = await sessions.create(
                tx, user_pk, ttl, ip=browser.client_ip, user_agent=browser.user_agent
            )
            await events.record(
                tx,
                "login",
                user=user,
                client_ip=browser.client_ip,
                context={
                    "auth_method": run.state.context.get("auth_method", ""),
                    "flow": run.state.slug,
                    "http_request": run.http_request,
                },
                retention=run.retention,
            )
        return key, user

    async def _logout(self, run: base.Run, browser: Browser) -> None:
        if browser.user is None:
            return
        async with self.services.store.transaction() as tx:
            await sessions.end(tx, browser.key)
            await events.record(
                tx,
                "logout",
                user=browser.user,
                client_ip=browser.client_ip,
                context={"flow": run.state.slug},
                retention=run.retention,
            )
        ended, user = sessions.digest(browser.key), browser.user
        browser.user = None
        for listener in self.logout_listeners:
            await listener(ended, user)


def _done_cache_key(done_key: str) -> str:
    return f"flow-done:{crypto.secrets.sha256_hex(done_key)}"


def _flow(snapshot: definitions.Snapshot, slug: str) -> dict[str, Any]:
    flow = snapshot.flows.get(slug)
    if flow is None:
        raise errors.NotFound(slug[:50])
    return flow


def _redirect(to: str) -> dict[str, Any]:
    return wire.challenges.render({"component": REDIRECT, "to": to})


def _flow_info(flow: dict[str, Any]) -> dict[str, Any]:
    return {
        "title": flow["title"],
        "background": wire.flows.DEFAULT_BACKGROUND,  # authentik's, for a flow without its own
        "cancel_url": "/flows/-/cancel/",
        "layout": flow["layout"],
    }


def _secret_strings(value: Any, *, secret_only: bool = False, depth: int = 0) -> list[str]:
    """The strings inside `value` to mask: all of them, or (`secret_only`) only those under a
    secret-looking key. Strings under 4 characters stay (masking them would mask ordinary text)."""
    if depth > 10:
        return []
    if isinstance(value, str):
        return [value] if len(value) >= 4 and not secret_only else []
    found: list[str] = []
    if isinstance(value, list | tuple):
        for item in value:
            found += _secret_strings(item, secret_only=secret_only, depth=depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            below = secret_only and not logs.is_secret_key(key)
            found += _secret_strings(item, secret_only=below, depth=depth + 1)
    return found


def _summary(exc: Exception, hidden: list[str]) -> dict[str, str]:
    """The exception's type and the start of its message, with `hidden` strings masked."""
    message = str(exc)
    for secret in sorted(set(hidden), key=len, reverse=True):
        message = message.replace(secret, events.REDACTED)
    if len(message) > MESSAGE_LIMIT:
        message = message[:MESSAGE_LIMIT] + "…"
    return {"type": type(exc).__name__, "message": message}


def _errors(exc: pydantic.ValidationError) -> dict[str, list[dict[str, str]]]:
    out: dict[str, list[dict[str, str]]] = {}
    for err in exc.errors(include_url=False):
        name = ".".join(str(p) for p in err["loc"]) or "non_field_errors"
        message = "This field is required." if err["type"] == "missing" else err["msg"]
        out.setdefault(name, []).append({"string": message, "code": err["type"]})
    return out


__all__ = ["Browser", "Executor", "Reply", "store"]
