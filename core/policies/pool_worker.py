"""The worker process of the expression pool (`pool`): evaluates expressions under rlimits.

Started by `pool.Pool` as `python -I -m tessera.core.policies.pool_worker <memory> <cpu>` with
an empty environment, its standard input and output piped to the parent. It imports the
sandbox, limits its own address space (`RLIMIT_AS`) and forbids core dumps and file writes,
says it is ready, then answers requests one at a time until its input closes (the parent went
away, or closed the pool).

Frames are a 4-byte big-endian length and a body. The parent's frames are pickles (the parent
is trusted; they hold the expression's source, variables and settings, and the answers to hook
calls). This process's frames are JSON only, so the parent never unpickles anything an
expression built: `{"ready": true}`; `{"hook": name, "args": ...}` when the expression calls a
hook the parent serves (`ak_user_by`, `ak_call_policy`); `{"result": ...}` or `{"error": ...}`
at the end of a run. The result is reduced to the shape the caller asked for in this process
(`truth`: `bool(value)`; `text`: the value's text; `claims`: a dict of JSON claims, as JSON
text), so that no conversion of an expression's value ever runs in the parent.

# SECURITY: each run gets `RLIMIT_CPU` set to what the process used so far plus the run's time
# budget (rounded up, plus one second): a native call that never returns to the sandbox's
# checks is killed by the kernel (SIGXCPU), and the parent kills it anyway at its wall-clock
# deadline. `RLIMIT_AS` makes a huge allocation fail with `MemoryError` instead of taking the
# machine's memory; the sandbox reports it as `LimitExceeded`.
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import json
import math
import os
import pickle
import resource
import struct
import sys
import uuid
from typing import Any

from tessera.core.policies import sandbox, views
from tessera.core.policies.sandbox.budget import Budget

HEADER = struct.Struct(">I")
MAX_TEXT = 65_536  # characters of a `text` result
MAX_CLAIMS = 262_144  # characters of a `claims` result, as JSON
_compile = functools.lru_cache(maxsize=256)(sandbox.compile)


class Channel:
    """Frames over this process's standard input and output."""

    def __init__(self) -> None:
        self.reader = sys.stdin.buffer
        self.writer = sys.stdout.buffer

    def receive(self) -> Any:
        header = self.reader.read(HEADER.size)
        if len(header) < HEADER.size:
            return None
        (length,) = HEADER.unpack(header)
        body = self.reader.read(length)
        if len(body) < length:
            return None
        return pickle.loads(body)  # noqa: S301 - the parent's own frames

    def send(self, message: Any) -> None:
        body = json.dumps(message, separators=(",", ":")).encode()
        self.writer.write(HEADER.pack(len(body)) + body)
        self.writer.flush()


def limit(memory: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))


def cpu_budget(seconds: float) -> None:
    """Let the next run use `seconds` of CPU time (rounded up, plus one) beyond what the process
    used so far; the kernel stops the process past that."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = usage.ru_utime + usage.ru_stime
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = int(used) + math.ceil(seconds) + 1
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def hooks(channel: Channel, remote: frozenset[str]) -> sandbox.Hooks:
    """`ak_is_group_member` answered here (it reads the user view only); the hooks the parent
    serves (`remote`) asked over the channel, their arguments sent as JSON."""

    def ask(name: str, args: Any) -> Any:
        try:
            channel.send({"hook": name, "args": args})
        except (TypeError, ValueError):
            raise TypeError(f"the arguments of {name} must be plain data") from None
        answer = channel.receive()
        if answer is None:
            raise SystemExit(0)
        if "error" in answer:
            raise sandbox.ExpressionError(str(answer["error"]))
        return answer["value"]

    def user_by(filters: dict[str, Any]) -> Any:
        return ask("user_by", filters)

    def call_policy(name: str, variables: dict[str, Any]) -> Any:
        return ask("call_policy", [name, variables])

    return sandbox.Hooks(
        is_group_member=views.is_group_member,
        user_by=user_by if "user_by" in remote else None,
        call_policy=call_policy if "call_policy" in remote else None,
    )


def reduce(value: Any, shape: str, limits: sandbox.Limits) -> Any:
    """The part of `value` the caller asked for, as plain JSON data."""
    if shape == "truth":
        return bool(value)
    if shape == "text":
        if value is None:
            return None
        return Budget(limits, 1, 1.0).text(value)[:MAX_TEXT]
    if shape == "claims":
        return _claims(value, limits)
    if shape == "values":
        return _values(value, limits)
    raise ValueError(f"unknown result shape {shape!r}")


MAX_VALUES = 1000  # items of a `values` result (a SAML attribute's values)


def _values(value: Any, limits: sandbox.Limits) -> str:
    """A SAML property mapping's values as a JSON list of texts: none for None, one for a
    scalar, each item's text for a list, tuple or set."""
    if value is None:
        items: list[Any] = []
    elif isinstance(value, list | tuple | set | frozenset):
        items = list(value)[: MAX_VALUES + 1]
    else:
        items = [value]
    if len(items) > MAX_VALUES:
        raise sandbox.LimitExceeded(f"a mapping may return at most {MAX_VALUES} values")
    budget = Budget(limits, 1, 1.0)
    texts = [budget.text(item)[:MAX_TEXT] for item in items if item is not None]
    text = json.dumps(texts, separators=(",", ":"))
    if len(text) > MAX_CLAIMS:
        raise sandbox.LimitExceeded(f"the values are longer than {MAX_CLAIMS} characters")
    return text


def _claims(value: Any, limits: sandbox.Limits) -> str | None:
    """A scope mapping's claims as JSON text, or None when it returned anything else."""
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        return None
    # SECURITY: weighed before encoding: structures that share parts unfold in JSON.
    Budget(limits, 1, 1.0).weigh(value)
    try:
        text = json.dumps(value, default=_claim_value, separators=(",", ":"))
    except (TypeError, ValueError):
        return None
    if len(text) > MAX_CLAIMS:
        raise sandbox.LimitExceeded(f"the claims are longer than {MAX_CLAIMS} characters")
    return text


_AS_TEXT = (
    uuid.UUID, ipaddress.IPv4Address, ipaddress.IPv6Address, ipaddress.IPv4Network,
    ipaddress.IPv6Network, views.UserView, views.GroupView,
)  # fmt: skip


def _claim_value(value: Any) -> Any:
    """What JSON cannot hold natively but a claim may: sets, dates, UUIDs, addresses, views."""
    if isinstance(value, (set, frozenset)):
        return list(value)
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, _AS_TEXT):
        return str(value)
    raise TypeError("not a claim value")


def serve(channel: Channel) -> None:
    channel.send({"ready": True})
    while (request := channel.receive()) is not None:
        cpu_budget(request["timeout"])
        limits = request["limits"]
        try:
            program = _compile(request["source"])
            result = program.run(
                request["variables"],
                hooks=hooks(channel, request["remote"]),
                steps=request["steps"],
                timeout=request["timeout"],
                limits=limits,
            )
            answer = {
                "value": reduce(result.value, request["shape"], limits),
                "messages": result.messages,
                "log": [
                    {
                        "level": entry.level,
                        "message": entry.message,
                        "attributes": entry.attributes,
                        "timestamp": entry.timestamp.isoformat(),
                    }
                    for entry in result.log
                ],
                "steps": result.steps,
            }
        except sandbox.SandboxError as exc:
            channel.send({"error": _error(exc)})
            continue
        except MemoryError:
            channel.send(
                {"error": _error(sandbox.LimitExceeded("the expression ran out of memory"))}
            )
            continue
        except Exception as exc:  # reducing the value failed (a view's text, say)
            channel.send({"error": _error(sandbox.ExpressionError(sandbox.describe(exc)))})
            continue
        channel.send({"result": answer})


def _error(exc: sandbox.SandboxError) -> dict[str, Any]:
    return {"kind": type(exc).__name__, "message": exc.message, "line": exc.line}


def main() -> None:
    memory = int(sys.argv[1])
    os.chdir("/")
    limit(memory)
    serve(Channel())


if __name__ == "__main__":
    main()
