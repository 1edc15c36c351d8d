"""Run a target through every concurrency level: warm-up, measured phase, supervision.

Everything is bounded: a level has ``timeout`` seconds in all (warm-up included); a request in
flight for more than ``stall`` seconds is a HANG; the orders are a fixed count shared by the
level's clients; every poll loop has a maximum count.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import statistics
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cpbench.client import Account, Transport
from cpbench.flow import Issued, PollPolicy, Responder, issue_one
from cpbench.procs import cpu_ticks, host_ticks, thread_ticks, ticks_to_ms
from cpbench.profile import PySpyRecorder, py_spy_dump, summarize_collapsed, summarize_goroutines
from cpbench.targets import Running, goroutine_dump

MAX_ERRORS_KEPT = 5


@dataclass
class Settings:
    concurrency: list[int]
    orders: int
    warmup: int
    timeout: float
    stall: float
    poll: PollPolicy
    profile: bool
    results_dir: Path
    pyspy_flags: str = "--nonblocking"


@dataclass
class LevelResult:
    target: str
    concurrency: int
    status: str = "ok"
    orders: int = 0
    ok: int = 0
    errors: int = 0
    seconds: float = 0.0
    issuances_per_second: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    mean_ms: float | None = None
    server_cpu_ms_per_issuance: float | None = None
    helper_cpu_ms_per_issuance: float | None = None
    client_cpu_ms_per_issuance: float | None = None
    requests_per_issuance: float | None = None
    polls_per_issuance: float | None = None
    host_other_cpus: float | None = None
    first_errors: list[str] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Sink:
    issued: list[Issued] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class Batch:
    """A fixed number of names, handed out one at a time to whichever client asks."""

    def __init__(self, count: int, names: Iterator[str]) -> None:
        self._names = itertools.islice(names, count)

    def take(self) -> str | None:
        return next(self._names, None)


def name_source(tag: str) -> Iterator[str]:
    return (f"b{n}-{tag}.bench.localhost" for n in itertools.count())


async def register(transport: Transport, directory: dict[str, Any], count: int) -> list[Account]:
    accounts = [Account(transport, directory) for _ in range(count)]
    for acct in accounts:
        await acct.register()
    return accounts


async def _client(acct: Account, batch: Batch, responder: Responder, poll: PollPolicy, sink: Sink):
    """Issue until the batch is empty; a failed order is counted and shown, never fatal."""
    while (name := batch.take()) is not None:
        try:
            sink.issued.append(await issue_one(acct, name, responder, poll))
        except Exception as exc:  # AcmeError, aiohttp errors, and any surprise in a reply
            sink.errors.append(f"{name}: {type(exc).__name__}: {exc}"[:500])


async def run_batch(
    accounts: list[Account],
    batch: Batch,
    responder: Responder,
    running: Running,
    cfg: Settings,
    deadline: float,
) -> tuple[Sink, str, list[tuple[str, float]]]:
    """Run the batch on one task per account under supervision: (sink, status, stuck)."""
    sink = Sink()
    transport = accounts[0].transport
    group = asyncio.gather(*(_client(a, batch, responder, cfg.poll, sink) for a in accounts))
    group.add_done_callback(_consume)
    status, stuck = "ok", []
    try:
        while not group.done():
            await asyncio.wait({group}, timeout=0.2)
            if group.done():
                break
            if stuck := transport.stuck(cfg.stall):
                status = "HANG"
            elif not running.alive():
                status = "DIED"
            elif time.monotonic() > deadline:
                status, stuck = "TIMEOUT", transport.stuck(0)
            if status != "ok":
                break
    finally:
        if not group.done():
            group.cancel()
            await asyncio.wait({group}, timeout=5)
    return sink, status, stuck


def _consume(future: asyncio.Future[Any]) -> None:
    """Retrieve the outcome of a cancelled batch so asyncio does not log it as lost."""
    if not future.cancelled():
        future.exception()


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


async def run_level(
    running: Running,
    accounts: list[Account],
    responder: Responder,
    names: Iterator[str],
    cfg: Settings,
    concurrency: int,
) -> LevelResult:
    result = LevelResult(running.name, concurrency, orders=cfg.orders)
    deadline = time.monotonic() + cfg.timeout
    clients = accounts[:concurrency]
    warm_count = max(cfg.warmup, 2 * concurrency)
    warm, status, stuck = await run_batch(
        clients, Batch(warm_count, names), responder, running, cfg, deadline
    )
    if status != "ok" or not warm.issued:
        result.status = status if status != "ok" else "ERROR"
        result.first_errors = warm.errors[:MAX_ERRORS_KEPT]
        result.evidence["phase"] = "warm-up"
        _note_stuck(result, stuck, running, cfg)
        return result
    recorder = await _start_profile(running, cfg, concurrency)
    before = _snapshot(running, accounts[0].transport, responder)
    sink, status, stuck = await run_batch(
        clients, Batch(cfg.orders, names), responder, running, cfg, deadline
    )
    after = _snapshot(running, accounts[0].transport, responder)
    _finish_profile(recorder, result)
    result.status = status
    _fill(result, sink, before, after)
    _note_stuck(result, stuck, running, cfg)
    return result


def _snapshot(running: Running, transport: Transport, responder: Responder) -> dict[str, Any]:
    alive = running.alive()
    busy, total = host_ticks()
    return {
        "fetches": responder.hits,
        "host_busy": busy,
        "host_total": total,
        "self": cpu_ticks(os.getpid()),
        "threads": thread_ticks(running.pid) if alive else {},
        "wall": time.perf_counter(),
        "server": running.cpu_ticks() if alive else 0,
        "helpers": running.helper_ticks() if alive else 0,
        "client": time.process_time(),
        "requests": transport.requests,
    }


def _fill(result: LevelResult, sink: Sink, before: dict[str, Any], after: dict[str, Any]):
    result.ok, result.errors = len(sink.issued), len(sink.errors)
    result.first_errors = sink.errors[:MAX_ERRORS_KEPT]
    result.seconds = round(after["wall"] - before["wall"], 3)
    n = result.ok
    if n == 0 or result.status != "ok":
        return
    latencies = sorted(i.latency * 1000 for i in sink.issued)
    result.issuances_per_second = round(n / result.seconds, 2)
    result.p50_ms = round(percentile(latencies, 50), 1)
    result.p99_ms = round(percentile(latencies, 99), 1)
    result.mean_ms = round(statistics.fmean(latencies), 1)
    result.server_cpu_ms_per_issuance = round(
        ticks_to_ms(int(after["server"] - before["server"])) / n, 2
    )
    result.helper_cpu_ms_per_issuance = round(
        ticks_to_ms(int(after["helpers"] - before["helpers"])) / n, 2
    )
    result.client_cpu_ms_per_issuance = round((after["client"] - before["client"]) * 1000 / n, 2)
    result.requests_per_issuance = round((after["requests"] - before["requests"]) / n, 2)
    result.polls_per_issuance = round(sum(i.polls for i in sink.issued) / n, 2)
    result.evidence["server_threads_cpu_ms_per_issuance"] = _thread_split(before, after, n)
    result.evidence["host"] = _host_share(before, after)
    result.host_other_cpus = result.evidence["host"]["other_processes_cpus"]
    result.evidence["http01_fetches_per_issuance"] = round(
        (after["fetches"] - before["fetches"]) / n, 2
    )


def _host_share(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float]:
    """Machine CPU during the phase, in CPUs: total busy, and what neither side of the
    benchmark used (other processes on this machine make a run noisy)."""
    d = {k: after[k] - before[k] for k in ("host_busy", "host_total", "server", "helpers", "self")}
    cpus = os.cpu_count() or 1
    wall_ticks = d["host_total"] / cpus
    ours = d["server"] + d["helpers"] + d["self"]
    return {
        "busy_cpus": round(d["host_busy"] / wall_ticks, 2),
        "other_processes_cpus": round(max(0, d["host_busy"] - ours) / wall_ticks, 2),
        "cpus": cpus,
    }


def _thread_split(before: dict[str, Any], after: dict[str, Any], n: int) -> dict[str, float]:
    """Server CPU per issuance: main thread and the others (alive at the end of the phase)."""
    split = {
        name: round(ticks_to_ms(ticks - before["threads"].get(name, 0)) / n, 2)
        for name, ticks in after["threads"].items()
    }
    return {name: ms for name, ms in sorted(split.items(), key=lambda kv: -kv[1]) if ms > 0}


async def _start_profile(running: Running, cfg: Settings, concurrency: int):
    if not cfg.profile or running.name != "certplane":
        return None
    cfg.results_dir.mkdir(parents=True, exist_ok=True)
    output = cfg.results_dir / f"certplane-c{concurrency}.collapsed"
    recorder = PySpyRecorder(running.pid, output, cfg.pyspy_flags)
    await asyncio.sleep(1.0)  # let py-spy attach before the measured phase starts
    return recorder


def _finish_profile(recorder: PySpyRecorder | None, result: LevelResult) -> None:
    if recorder is None:
        return
    recorder.finish()
    result.evidence["profiled"] = True
    if recorder.output.exists():
        result.evidence["profile_file"] = str(recorder.output)
        result.evidence["profile"] = summarize_collapsed(recorder.output)


def _note_stuck(
    result: LevelResult, stuck: list[tuple[str, float]], running: Running, cfg: Settings
) -> None:
    if result.status == "ok":
        return
    result.evidence["in_flight"] = [f"{label} ({age:.1f} s)" for label, age in stuck[:20]]
    result.evidence["log_tail"] = running.log_tail(15)
    cfg.results_dir.mkdir(parents=True, exist_ok=True)
    dump_path = (
        cfg.results_dir / f"{running.name}-{result.status.lower()}-c{result.concurrency}.txt"
    )
    if running.name == "pebble":
        dump = goroutine_dump(running)
        result.evidence["blocked_goroutines"] = summarize_goroutines(dump)
    else:
        dump = py_spy_dump(running.pid) if running.alive() else running.log_tail(200)
    dump_path.write_text(dump)
    result.evidence["dump_file"] = str(dump_path)
