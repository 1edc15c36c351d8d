"""Full-issuance benchmark: certplane (SQLite) side by side with Pebble, on loopback.

    .venv/bin/python bench/issuance.py [--concurrency 1,4] [--orders N] [--timeout S]
                                       [--targets certplane,pebble] [--profile]

For each target: start it fresh as its own process on free loopback ports, register one account
per client, warm up, then run N orders with C concurrent clients. One order is newOrder (one
random DNS name) → authorization → http-01 answered by a real responder this script serves on
loopback → poll until valid → finalize with a fresh P-256 CSR → poll until valid → download.

Clients are asyncio tasks on one aiohttp session, signing ES256 flattened JWS with
`cryptography` (no josepy, no threads). Server CPU is utime+stime from /proc/<pid>/stat over the
measured phase. A level that does not finish within --timeout, or a request stuck for --stall
seconds, is reported (TIMEOUT / HANG) with the stuck requests and the server's stacks, and the
target is restarted for the next level. Results: a table on stdout, JSON in
bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests"))

from cpbench import report  # noqa: E402
from cpbench.client import Transport  # noqa: E402
from cpbench.flow import PollPolicy, Responder  # noqa: E402
from cpbench.procs import free_port, stop_all  # noqa: E402
from cpbench.runner import LevelResult, Settings, name_source, register, run_level  # noqa: E402
from cpbench.targets import Running, start_certplane, start_pebble, wait_ready  # noqa: E402

TARGETS = ("certplane", "pebble")
CLIENT_DESIGN = (
    "asyncio tasks (one per account) sharing one aiohttp keep-alive session; ES256 flattened "
    "JWS signed with cryptography; nonces reused from Replay-Nonce; http-01 responder is an "
    "aiohttp server in the same event loop"
)


def _csv_ints(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("expected positive integers, comma-separated")
    return values


def _csv_targets(text: str) -> list[str]:
    values = [v.strip() for v in text.split(",") if v.strip()]
    if not values or set(values) - set(TARGETS):
        raise argparse.ArgumentTypeError(f"expected a subset of {','.join(TARGETS)}")
    return values


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--concurrency", type=_csv_ints, default=[1, 4])
    p.add_argument("--orders", type=int, default=100, help="measured orders per level")
    p.add_argument("--warmup", type=int, default=5, help="warm-up orders (at least 2x conc)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per target and level")
    p.add_argument("--stall", type=float, default=10.0, help="a request older is a HANG")
    p.add_argument("--targets", type=_csv_targets, default=list(TARGETS))
    p.add_argument("--poll-ms", type=float, default=5.0, help="first poll delay (x1.5, cap 250)")
    p.add_argument("--profile", action="store_true", help="py-spy record certplane (slower)")
    p.add_argument(
        "--pyspy-flags", default="--nonblocking", help="py-spy record flags (--pyspy-flags=...)"
    )
    p.add_argument("--certplane-tls", action="store_true", help="serve certplane over HTTPS")
    p.add_argument("--certplane-log-level", default="INFO")
    p.add_argument("--output", type=Path, default=HERE / "results" / "latest.json")
    p.add_argument("--keep", action="store_true", help="keep the targets' work dirs")
    args = p.parse_args(argv)
    if args.orders < 1 or args.timeout <= 0 or args.stall <= 0:
        p.error("--orders, --timeout and --stall must be positive")
    args.output = args.output.resolve()
    return args


def start_target(name: str, responder_port: int, args: argparse.Namespace) -> Running:
    if name == "certplane":
        return start_certplane(
            responder_port, tls=args.certplane_tls, log_level=args.certplane_log_level
        )
    return start_pebble(responder_port)


async def bench_target(
    name: str, args: argparse.Namespace, cfg: Settings, responder: Responder, port: int,
    names: Iterator[str],
) -> list[LevelResult]:  # fmt: skip
    """Every concurrency level against one target; restarted after a level that failed."""
    results: list[LevelResult] = []
    running: Running | None = None
    workdirs: list[Path] = []
    async with Transport(request_timeout=args.timeout) as transport:
        try:
            for conc in cfg.concurrency:
                if running is None:
                    running = await asyncio.to_thread(start_target, name, port, args)
                    workdirs.append(running.workdir)
                    directory = await wait_ready(transport, running)
                    accounts = await register(transport, directory, max(cfg.concurrency))
                result = await run_level(running, accounts, responder, names, cfg, conc)
                result.evidence.setdefault("target", running.detail)
                results.append(result)
                _print_progress(result)
                if result.status != "ok":
                    running.stop()
                    running = None
        except Exception as exc:  # a target that cannot start is a result, not a crash
            done = {r.concurrency for r in results}
            for conc in (c for c in cfg.concurrency if c not in done):
                failed = LevelResult(name, conc, status="ERROR", orders=cfg.orders)
                failed.first_errors = [f"{type(exc).__name__}: {exc}"[:2000]]
                results.append(failed)
        finally:
            if running is not None:
                running.stop()
    _cleanup(workdirs, results, args.keep)
    return results


def _print_progress(result: LevelResult) -> None:
    ips = result.issuances_per_second
    print(
        f"  {result.target} c={result.concurrency}: {result.status}"
        + (f", {ips:.1f} iss/s" if ips else ""),
        file=sys.stderr,
        flush=True,
    )


def _cleanup(workdirs: list[Path], results: list[LevelResult], keep: bool) -> None:
    failed = any(r.status != "ok" for r in results)
    for path in workdirs:
        if keep or failed:
            print(f"  kept work dir {path}", file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)


def _run(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip()


def metadata(args: argparse.Namespace, poll: PollPolicy) -> dict[str, Any]:
    dirty = _run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "server", "ca", "policy"])
    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "git_head": _run(["git", "-C", str(ROOT), "rev-parse", "HEAD"]),
        "server_tree_dirty": bool(dirty),
        "pebble_version": _run(["dpkg-query", "-W", "-f", "${Version}", "pebble"]),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "clk_tck": os.sysconf("SC_CLK_TCK"),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "poll_policy": dataclasses.asdict(poll),
        "client_design": CLIENT_DESIGN,
        "latency": "per order, newOrder sent -> certificate downloaded (CSR generation included)",
        "server_cpu": "delta of utime+stime (+cutime+cstime) of the server pid over the measured "
        "phase; helper = pebble-challtestsrv (DNS for Pebble's VA)",
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    poll = PollPolicy(first=args.poll_ms / 1000.0)
    cfg = Settings(
        concurrency=args.concurrency,
        orders=args.orders,
        warmup=args.warmup,
        timeout=args.timeout,
        stall=args.stall,
        poll=poll,
        profile=args.profile,
        results_dir=args.output.parent,
        pyspy_flags=args.pyspy_flags,
    )
    responder, port = Responder(), free_port()
    await responder.start(port)
    names = name_source(secrets.token_hex(3))
    results: list[LevelResult] = []
    try:
        for target in args.targets:
            print(f"benchmarking {target} ...", file=sys.stderr, flush=True)
            results += await bench_target(target, args, cfg, responder, port, names)
    finally:
        await responder.stop()
    meta = metadata(args, poll)
    meta["responder"] = {"port": port, "hits": responder.hits, "misses": responder.misses}
    return {
        "meta": meta,
        "results": [r.to_json() for r in results],
        "ratios": report.ratios(results),
        "_objects": results,
    }


def _sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIG_IGN
    try:
        doc = asyncio.run(main_async(args))
    except KeyboardInterrupt:
        print("interrupted: every started process was stopped", file=sys.stderr)
        return 130
    finally:
        stop_all()
    results: list[LevelResult] = doc.pop("_objects")
    print(report.table(results))
    print()
    for line in report.ratio_lines(doc["ratios"]) + report.evidence_lines(results):
        print(line)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\nJSON: {args.output}")
    return 0 if all(r.status == "ok" for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
