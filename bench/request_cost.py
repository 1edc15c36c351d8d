"""Server CPU per request, one request type at a time: certplane (SQLite) next to Pebble.

    .venv/bin/python bench/request_cost.py [--requests 300] [--targets certplane,pebble]

Where issuance.py measures whole issuances, this isolates the fixed cost every ACME request
pays (tenant lookup, JWS check, nonce redemption, one read), sequentially, on one keep-alive
connection: GET directory, HEAD newNonce, POST-as-GET of an account and of an order.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from cpbench.client import Account, Transport  # noqa: E402
from cpbench.flow import PollPolicy, Responder, issue_one  # noqa: E402
from cpbench.procs import free_port, stop_all, ticks_to_ms  # noqa: E402
from cpbench.targets import Running, start_certplane, start_pebble, wait_ready  # noqa: E402

WARM_ISSUANCES = 3


async def measure(running: Running, count: int, send: Callable[[], Awaitable[Any]]) -> dict:
    ticks, started = running.cpu_ticks(), time.perf_counter()
    for _ in range(count):
        await send()
    wall = (time.perf_counter() - started) * 1000 / count
    cpu = ticks_to_ms(running.cpu_ticks() - ticks) / count
    return {"server_cpu_ms": round(cpu, 2), "wall_ms": round(wall, 2)}


async def one_target(running: Running, responder: Responder, count: int) -> dict[str, dict]:
    async with Transport(request_timeout=30) as transport:
        directory = await wait_ready(transport, running)
        acct = Account(transport, directory)
        await acct.register()
        for n in range(WARM_ISSUANCES):
            await issue_one(acct, f"rc{n}-{running.name}.bench.localhost", responder, PollPolicy())
        ident = {"type": "dns", "value": f"rc-order-{running.name}.bench.localhost"}
        reply = await acct.post(directory["newOrder"], {"identifiers": [ident]}, "new-order")
        order_url = reply.headers["Location"]
        cases: dict[str, Callable[[], Awaitable[Any]]] = {
            "GET directory": lambda: transport.request("GET", running.directory_url, "dir"),
            "HEAD newNonce": lambda: transport.request("HEAD", directory["newNonce"], "nonce"),
            "POST-as-GET account": lambda: acct.post(str(acct.kid), None, "acct"),
            "POST-as-GET order": lambda: acct.post(order_url, None, "order"),
        }
        return {name: await measure(running, count, send) for name, send in cases.items()}


async def main_async(args: argparse.Namespace) -> dict[str, dict]:
    responder, port = Responder(), free_port()
    await responder.start(port)
    results: dict[str, dict] = {}
    try:
        for name in args.targets:
            start = start_certplane if name == "certplane" else start_pebble
            kwargs = {"tls": False, "log_level": "INFO"} if name == "certplane" else {}
            running = await asyncio.to_thread(start, port, **kwargs)
            try:
                results[name] = await one_target(running, responder, args.requests)
            finally:
                running.stop()
                shutil.rmtree(running.workdir, ignore_errors=True)
    finally:
        await responder.stop()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--targets", default="certplane,pebble")
    args = parser.parse_args()
    args.targets = [t for t in args.targets.split(",") if t in ("certplane", "pebble")]
    try:
        results = asyncio.run(main_async(args))
    finally:
        stop_all()
    for target, cases in results.items():
        for case, r in cases.items():
            print(f"{target:10s} {case:22s} server CPU {r['server_cpu_ms']:6.2f} ms/req  "
                  f"wall {r['wall_ms']:6.2f} ms/req")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
