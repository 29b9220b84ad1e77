"""The executor of the core's CPU work: password hashing and verification, key generation.

`await work.run(function, *args)` runs `function` in a thread of this executor, never in the
default executor that `asyncio.to_thread` shares with everything else, and never in the threads
that drive expressions (`policies.pool` has its own). It has as many threads as the default
executor would (CPUs + 4, at most 32): argon2 releases the GIL while it hashes, and with fewer
threads than concurrent logins a busy machine gave the server fewer runnable threads, and half
the login rate (docs/benchmarks.md).

# SECURITY: a flood of slow expressions once filled the default executor, and password
# verification queued behind them: logins stalled. CPU work a login needs waits only for other
# CPU work of the same kind.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import os
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")
SIZE = min(32, (os.cpu_count() or 1) + 4)


@functools.cache
def executor() -> concurrent.futures.ThreadPoolExecutor:
    """The process's CPU executor, made on first use."""
    return concurrent.futures.ThreadPoolExecutor(SIZE, thread_name_prefix="cpu-work")


async def run(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`function(*args, **kwargs)` in the CPU executor."""
    call = functools.partial(function, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(executor(), call)
