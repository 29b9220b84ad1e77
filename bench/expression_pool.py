"""What the expression pool costs: login, token and userinfo rates before and after, and the
latency of an expression policy in-process against through the pool.

Run from the repository root: `PYTHONSAFEPATH=1 .venv/bin/python bench/expression_pool.py`
(`--help` for options). Not part of the test suite; it needs `wrk` (and uses `nginx` when
found), as `bench/oidc_token.py` does.

1. **Before and after, same run.** Two source trees are exported from git into a temporary
   directory: `--base` (default: the commit before the pool's) and the same tree with the
   changes of the commits `--apply` (default: those that introduced the checks of issue 22, the
   pool and the CPU executor) applied, so that nothing else differs. Each tree is put first on
   `PYTHONPATH` (through a directory `tessera/` whose `core`, `operator` and `outposts` point
   into the tree), and `bench/login.py` and
   `bench/oidc_token.py` run against it, alternating before / after for `--rounds` rounds so
   that a noisy moment hits both (the pool's worker processes run the installed code:
   `python -I` ignores `PYTHONPATH`; logins, tokens and userinfo with the default mappings run
   no expression). Each of those scripts measures its own references in its own
   run (argon2 for logins, bare aiohttp and nginx for the token endpoint); reported here are
   Tessera's rates, their ratios to those references, and after / before of the ratios.
2. **Expression policy latency.** In this process: the same policy (`ak_is_group_member`, a
   group filter, a message) run `--evaluations` times one after another, first as before (the
   sandbox in a thread, `asyncio.to_thread(program.run)`), then through the pool
   (`pool.evaluate`), then both again with `--concurrency` evaluations at once. p50 and p99, and
   the ratio pool / in-process.

The JSON result goes to `bench/results/expression_pool-<UTC time>.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
POOL_COMMITS = ["9a6bb0d", "09862f8", "263344e", "b8d7dd3", "b73fe81", "eaf1f8a"]  # issue 22
POLICY = """
if not ak_is_group_member(request.user, name="staff"):
    ak_message("not staff")
    return False
return user.groups.filter(name__startswith="st").exists() and ak_client_ip.is_private
"""


def export(rev: str, apply: list[str], target: Path) -> Path:
    """`rev`'s tree in `target` (with the changes of the commits `apply` applied), and a
    `tessera` package directory pointing into it; returns the directory to put on `PYTHONPATH`."""
    target.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    for commit in apply:
        patch = subprocess.run(
            ["git", "-C", str(ROOT), "show", "--format=", commit], check=True, capture_output=True
        ).stdout
        subprocess.run(
            ["patch", "-p1", "-F3", "--quiet", "--no-backup-if-mismatch"],
            cwd=target,
            input=patch,
            check=True,
        )
    site = target / "site" / "tessera"
    site.mkdir(parents=True)
    for part in ("core", "operator", "outposts"):
        if (target / part).is_dir():
            (site / part).symlink_to(target / part)
    return site.parent


def run_script(script: str, path: Path, extra: list[str], output: Path) -> dict[str, Any]:
    # The scripts import their neighbours (`startup_memory`): their own directory goes first on
    # `sys.path`, so no PYTHONSAFEPATH for them (the servers they start set it).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONSAFEPATH"}
    env["PYTHONPATH"] = str(path)
    argv = [sys.executable, str(ROOT / "bench" / script), *extra]
    out = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{script} failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
    if script == "login.py":
        return dict(json.loads(out.stdout[out.stdout.index("{") :]))
    (written,) = sorted(output.glob("oidc_token-*.json"))
    result = dict(json.loads(written.read_text()))
    written.unlink()
    return result


def before_after(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    trees = {
        "before": export(args.base, [], work / "before"),
        "after": export(args.base, args.apply, work / "after"),
    }
    output = work / "results"
    runs: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
    for round_ in range(args.rounds):
        for name in ("before", "after") if round_ % 2 == 0 else ("after", "before"):
            print(f"round {round_ + 1}, {name}: login", flush=True)
            login = run_script("login.py", trees[name], ["--duration", str(args.duration)], output)
            print(f"round {round_ + 1}, {name}: token and userinfo", flush=True)
            oidc = run_script(
                "oidc_token.py",
                trees[name],
                ["--duration", str(args.duration), "--output", str(output)],
                output,
            )
            runs[name].append({"login": login, "oidc": oidc})
    summary: dict[str, Any] = {}
    for name, measured in runs.items():
        summary[name] = {
            "logins_per_s": statistics.median(r["login"]["logins_per_second"] for r in measured),
            "logins_per_hash": statistics.median(
                r["login"]["logins_per_second"] / r["login"]["hashes_per_second_one_core"]
                for r in measured
            ),
            **{
                f"{figure}_per_s": statistics.median(
                    r["oidc"]["tessera"][figure]["requests_per_s"] for r in measured
                )
                for figure in ("token", "userinfo")
            },
            **{
                f"{figure}_per_aiohttp": statistics.median(
                    r["oidc"]["ratios"][f"{figure}_per_aiohttp"] for r in measured
                )
                for figure in ("token", "userinfo")
            },
        }
    summary["after_over_before"] = {
        key: summary["after"][key] / summary["before"][key]
        for key in ("logins_per_hash", "token_per_aiohttp", "userinfo_per_aiohttp")
    }
    return {"summary": summary, "runs": runs}


async def latency(args: argparse.Namespace) -> dict[str, Any]:
    from tessera.core.policies import pool, sandbox, views

    program = sandbox.compile(POLICY)
    user = views.UserView({"pk": 1, "username": "u"}, [{"pk": 1, "name": "staff"}])
    variables = views.policy_variables(user, http_request=views.HttpRequestView("10.0.0.1"))
    hooks = sandbox.Hooks(is_group_member=views.is_group_member)

    async def in_process() -> Any:
        return await asyncio.to_thread(program.run, variables, hooks=hooks, steps=200_000)

    async def pooled() -> Any:
        return await pool.evaluate(POLICY, variables, shape="truth", steps=200_000, seconds=5)

    pool.default().start()
    await pooled()  # the workers have started and compiled the policy
    out: dict[str, Any] = {}
    for concurrency in (1, args.concurrency):
        for name, call in (("in_process", in_process), ("pool", pooled)):
            times: list[float] = []
            start = time.perf_counter()
            for _ in range(args.evaluations // concurrency):
                begin = time.perf_counter()
                results = await asyncio.gather(*(call() for _ in range(concurrency)))
                times.extend([time.perf_counter() - begin] * concurrency)
                assert all(r.value for r in results)
            elapsed = time.perf_counter() - start
            times.sort()
            out[f"{name}_c{concurrency}"] = {
                "p50_ms": 1000 * times[len(times) // 2],
                "p99_ms": 1000 * times[int(len(times) * 0.99)],
                "per_s": len(times) / elapsed,
            }
        out[f"pool_over_in_process_p50_c{concurrency}"] = (
            out[f"pool_c{concurrency}"]["p50_ms"] / out[f"in_process_c{concurrency}"]["p50_ms"]
        )
    pool.default().close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default=POOL_COMMITS[0] + "^", help="the tree 'before'")
    parser.add_argument("--apply", nargs="*", default=POOL_COMMITS, help="applied for 'after'")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of each load")
    parser.add_argument("--evaluations", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--skip-rates", action="store_true", help="the latency figures only")
    args = parser.parse_args()
    result: dict[str, Any] = {"when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    result["latency"] = asyncio.run(latency(args))
    print(json.dumps(result["latency"], indent=2), flush=True)
    if not args.skip_rates:
        work = Path(tempfile.mkdtemp(prefix="tessera-pool-bench-"))
        try:
            result["rates"] = before_after(args, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(json.dumps(result["rates"]["summary"], indent=2))
    result["load_average_1min"] = os.getloadavg()[0]
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    target = RESULTS / f"expression_pool-{stamp}.json"
    target.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {target}")


if __name__ == "__main__":
    main()
