"""The pool of worker processes that evaluate expressions: the sandbox's structural bound.

Expression policies, scope mappings and prompt initial values call `evaluate(source, variables,
shape=..., ...)`. The in-process sandbox (`sandbox`) checks every run first and gives the clear
messages; this module makes its promise of bounded CPU and memory hold even for a native call
that never returns to those checks. A run goes to one of a few worker processes
(`pool_worker`), each started with an empty environment, its address space limited
(`RLIMIT_AS`) and its CPU time limited per run (`RLIMIT_CPU`); the parent kills a worker that
has not answered by the run's deadline plus `grace` seconds, starts a replacement, and raises
`LimitExceeded` (a policy failure). The event loop never waits on a worker: each run is driven
by a thread of the pool's own executor (never the default one, never the one password hashing
uses), which reads the worker's answers with a deadline and hands hook calls
(`ak_user_by`, `ak_call_policy`) back to the caller's event loop.

What crosses the boundary: to the worker, a pickle the parent made (source, variables, limits);
from the worker, JSON only, at most `MAX_FRAME` bytes, holding plain data in the shape the caller
asked for: `truth` (`bool`), `text` (`str` or `None`), `claims` (a dict decoded from JSON, or
`None`) or `values` (a list of texts, a SAML attribute's), with the run's messages and log.

The pool is one per process, started on first use (the application starts it at start-up) and
closed at exit; a worker whose parent has gone sees its input close and exits.

# SECURITY: the parent never unpickles what a worker sends, never converts an expression's
# value itself (`str()` of a shared structure ran on the event loop before), and never waits on a
# worker from the event loop. A worker that breaks the protocol, sends too much, or dies is
# killed and replaced, and the run fails closed.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import datetime as dt
import json
import math
import os
import pickle
import queue
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from tessera.core.policies import sandbox

HEADER = struct.Struct(">I")
MAX_FRAME = 4 * 2**20  # bytes of one frame from a worker
START_TIMEOUT = 60.0  # seconds a new worker may take to import the sandbox
Shape = Literal["truth", "text", "claims", "values"]
RemoteHook = Callable[[Any], Awaitable[Any]]
_ERRORS: dict[str, type[sandbox.SandboxError]] = {
    cls.__name__: cls
    for cls in (
        sandbox.SandboxError,
        sandbox.Forbidden,
        sandbox.LimitExceeded,
        sandbox.ExpressionError,
    )
}


@dataclass(frozen=True)
class Settings:
    size: int = 2  # worker processes
    memory_mib: int = 512  # address space of each worker
    grace: float = 1.0  # seconds past a run's own deadline before its worker is killed


class _Stop(Exception):
    """The worker did not answer as it should; `reason` says how."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Worker:
    """One worker process and its pipes; used by one thread at a time."""

    def __init__(self, settings: Settings) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - our own module, no input of anyone's
            [sys.executable, "-I", "-m", "tessera.core.policies.pool_worker",
             str(settings.memory_mib * 2**20)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={"PYTHONSAFEPATH": "1", "PATH": os.defpath},  # no secret reaches the worker
            bufsize=0,
        )  # fmt: skip
        self.ready = False

    @property
    def pid(self) -> int:
        return self.process.pid

    def send(self, message: Any) -> None:
        self.send_pickled(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))

    def send_pickled(self, body: bytes) -> None:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(HEADER.pack(len(body)) + body)
        except (BrokenPipeError, OSError):
            raise _Stop("the worker process ended") from None

    def receive(self, deadline: float, cancelled: threading.Event) -> Any:
        (length,) = HEADER.unpack(self._read(HEADER.size, deadline, cancelled))
        if length > MAX_FRAME:
            raise _Stop("the worker sent too much")
        try:
            return json.loads(self._read(length, deadline, cancelled))
        except ValueError:
            raise _Stop("the worker sent an invalid answer") from None

    def _read(self, count: int, deadline: float, cancelled: threading.Event) -> bytes:
        assert self.process.stdout is not None
        fd, data = self.process.stdout.fileno(), bytearray()
        while len(data) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _Stop("deadline")
            readable, _, _ = select.select([fd], [], [], min(left, 0.05))
            if cancelled.is_set():
                raise _Stop("cancelled")
            if readable:
                chunk = os.read(fd, count - len(data))
                if not chunk:
                    raise _Stop("the worker process ended")
                data += chunk
        return bytes(data)

    def kill(self) -> int | None:
        """Kill the process, reap it, and return how it ended (a negative signal number)."""
        if self.process.poll() is None:
            self.process.kill()
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()
        return self.process.wait()

    def close(self) -> None:
        """Ask the process to end (its input closes), then make sure it has; one still starting
        is killed at once."""
        if self.ready and self.process.stdin is not None:
            self.process.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=2.0)
        self.kill()


class Pool:
    """A few worker processes, a run at a time each; see the module's docstring."""

    def __init__(self, settings: Settings = Settings()) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._idle: queue.SimpleQueue[Worker] = queue.SimpleQueue()
        self._workers: list[Worker] = []
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self.replaced = 0  # workers killed and replaced (for tests and metrics)

    def start(self) -> None:
        """Start the workers unless they run already; they import the sandbox meanwhile."""
        with self._lock:
            if self._executor is not None:
                return
            self._executor = concurrent.futures.ThreadPoolExecutor(
                self.settings.size, thread_name_prefix="expression-pool"
            )
            for _ in range(self.settings.size):
                worker = Worker(self.settings)
                self._workers.append(worker)
                self._idle.put(worker)

    def close(self) -> None:
        """End every worker and the pool's threads; `start` (or a run) starts them again."""
        with self._lock:
            executor, self._executor = self._executor, None
            workers, self._workers = self._workers, []
            self._idle = queue.SimpleQueue()
        for worker in workers:
            worker.close()
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def pids(self) -> list[int]:
        with self._lock:
            return [worker.pid for worker in self._workers]

    async def run(
        self,
        source: str,
        variables: Mapping[str, Any],
        *,
        shape: Shape,
        steps: int,
        seconds: float,
        limits: sandbox.Limits = sandbox.Limits(),  # noqa: B008 - frozen
        hooks: Mapping[str, RemoteHook] | None = None,
    ) -> sandbox.RunResult:
        """Evaluate `source` in a worker, within `steps` and `seconds` (and `limits`, as
        `Program.run`); the value in `RunResult` has the given `shape`.
        Raises `SandboxError` as `Program.run` does, and `LimitExceeded` when the worker had to
        be stopped."""
        self.start()
        assert self._executor is not None
        remote = dict(hooks or {})
        try:
            request = pickle.dumps(
                {
                    "source": source,
                    "variables": dict(variables),
                    "steps": steps,
                    "timeout": seconds,
                    "limits": limits,
                    "shape": shape,
                    "remote": frozenset(remote),
                },
                protocol=pickle.HIGHEST_PROTOCOL,
            )
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise sandbox.SandboxError(
                f"the expression's variables cannot be passed: {exc}"
            ) from None
        cancelled = threading.Event()
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(
            self._executor, self._drive, request, seconds, remote, loop, cancelled
        )
        try:
            answer = await future
        except asyncio.CancelledError:
            cancelled.set()  # the thread kills the worker and replaces it
            raise
        result = _result(answer)
        if shape == "claims" and result.value is not None:
            claims = json.loads(str(result.value))
            result.value = claims if isinstance(claims, dict) else None
        if shape == "values" and result.value is not None:
            values = json.loads(str(result.value))
            ok = isinstance(values, list) and all(isinstance(v, str) for v in values)
            result.value = values if ok else None
        return result

    def _drive(
        self,
        request: bytes,
        timeout: float,
        remote: Mapping[str, RemoteHook],
        loop: asyncio.AbstractEventLoop,
        cancelled: threading.Event,
    ) -> Any:
        """In a pool thread: take an idle worker, run the request, put the worker back (or a
        replacement)."""
        try:
            worker = self._idle.get(timeout=START_TIMEOUT)
        except queue.Empty:
            raise sandbox.SandboxError("the expression evaluator is not running") from None
        try:
            if not worker.ready:
                self._await_ready(worker)
            worker.send_pickled(request)
            deadline = time.monotonic() + timeout + self.settings.grace
            while True:
                message = worker.receive(deadline, cancelled)
                if not isinstance(message, dict):
                    raise _Stop("the worker sent an invalid answer")
                if "hook" in message:
                    worker.send(_answer_hook(remote, message, loop, deadline))
                    continue
                if "result" in message or "error" in message:
                    self._release(worker)
                    return message
                raise _Stop("the worker sent an invalid answer")
        except _Stop as stop:
            ended = worker.kill()
            self._replace(worker)
            raise _limit(stop.reason, ended, timeout) from None
        except BaseException:
            worker.kill()
            self._replace(worker)
            raise

    def _await_ready(self, worker: Worker) -> None:
        try:
            message = worker.receive(time.monotonic() + START_TIMEOUT, threading.Event())
        except _Stop:
            message = None
        if message != {"ready": True}:
            raise sandbox.SandboxError("the expression evaluator could not start")
        worker.ready = True

    def _release(self, worker: Worker) -> None:
        with self._lock:
            if worker in self._workers:
                self._idle.put(worker)
                return
        worker.close()  # the pool was closed meanwhile

    def _replace(self, worker: Worker) -> None:
        with self._lock:
            if worker not in self._workers:  # the pool was closed meanwhile
                return
            fresh = Worker(self.settings)
            self._workers[self._workers.index(worker)] = fresh
            self.replaced += 1
        self._idle.put(fresh)


def _answer_hook(
    remote: Mapping[str, RemoteHook],
    message: dict[str, Any],
    loop: asyncio.AbstractEventLoop,
    deadline: float,
) -> dict[str, Any]:
    """Run the caller's hook on its event loop and wait (in this thread) for its answer."""
    hook = remote.get(str(message["hook"]))
    if hook is None:
        raise _Stop("the worker asked for a hook it was not given")
    call = asyncio.run_coroutine_threadsafe(_awaited(hook, message.get("args")), loop)
    try:
        return {"value": call.result(timeout=max(deadline - time.monotonic(), 0))}
    except concurrent.futures.TimeoutError:
        call.cancel()
        raise _Stop("deadline") from None
    except sandbox.SandboxError as exc:
        return {"error": exc.message}
    except Exception as exc:  # a failing hook fails the expression, as in-process
        return {"error": sandbox.describe(exc)}


async def _awaited(hook: RemoteHook, args: Any) -> Any:
    return await hook(args)


def _limit(reason: str, ended: int | None, timeout: float) -> sandbox.SandboxError:
    if reason == "cancelled":
        return sandbox.LimitExceeded("the expression was stopped")
    if ended == -signal.SIGXCPU:
        return sandbox.LimitExceeded(f"the expression used more than {math.ceil(timeout)} s of CPU")
    if reason == "deadline":
        return sandbox.LimitExceeded(
            f"the expression ran for more than {timeout:g} seconds and its process was stopped"
        )
    return sandbox.LimitExceeded(f"the expression was stopped: {reason}")


def _result(answer: dict[str, Any]) -> sandbox.RunResult:
    if "error" in answer:
        error = answer["error"]
        cls = _ERRORS.get(error.get("kind"), sandbox.SandboxError)
        line = error.get("line")
        raise cls(str(error.get("message")), line if isinstance(line, int) else None)
    body = answer["result"]
    log = [
        sandbox.LogEntry(
            str(entry["level"]),
            str(entry["message"]),
            {str(k): str(v) for k, v in dict(entry["attributes"]).items()},
            dt.datetime.fromisoformat(str(entry["timestamp"])),
        )
        for entry in body["log"]
    ]
    return sandbox.RunResult(
        body["value"], [str(m) for m in body["messages"]], log, int(body["steps"])
    )


_POOL = Pool()
atexit.register(_POOL.close)


def configure(settings: Settings) -> None:
    """Use `settings` from now on (the running workers end; new ones start on next use)."""
    global _POOL  # one pool per process
    _POOL.close()
    atexit.unregister(_POOL.close)
    _POOL = Pool(settings)
    atexit.register(_POOL.close)


def default() -> Pool:
    return _POOL


async def evaluate(
    source: str,
    variables: Mapping[str, Any],
    *,
    shape: Shape,
    steps: int,
    seconds: float,
    limits: sandbox.Limits = sandbox.Limits(),  # noqa: B008 - frozen
    hooks: Mapping[str, RemoteHook] | None = None,
) -> sandbox.RunResult:
    """`Pool.run` on the process's pool."""
    return await _POOL.run(
        source, variables, shape=shape, steps=steps, seconds=seconds, limits=limits, hooks=hooks
    )
