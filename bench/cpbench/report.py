"""The table, the certplane/Pebble ratios against the product targets, and the JSON document."""

from __future__ import annotations

from typing import Any

from cpbench.runner import LevelResult

# From the product issue: certplane on SQLite at >= 0.5x Pebble's issuances per second and
# <= 2x Pebble's server CPU per issuance, at every concurrency.
MIN_THROUGHPUT_RATIO = 0.5
MAX_CPU_RATIO = 2.0

COLUMNS = (
    ("target", "target", "{}"),
    ("conc", "concurrency", "{}"),
    ("ok/err", None, "{}"),
    ("iss/s", "issuances_per_second", "{:.1f}"),
    ("p50 ms", "p50_ms", "{:.1f}"),
    ("p99 ms", "p99_ms", "{:.1f}"),
    ("srv CPU ms/iss", "server_cpu_ms_per_issuance", "{:.1f}"),
    ("helper CPU", "helper_cpu_ms_per_issuance", "{:.1f}"),
    ("client CPU", "client_cpu_ms_per_issuance", "{:.1f}"),
    ("req/iss", "requests_per_issuance", "{:.1f}"),
    ("other load", "host_other_cpus", "{:.2f}"),
    ("status", "status", "{}"),
)


def _cell(result: LevelResult, attr: str | None, fmt: str) -> str:
    if attr is None:
        return f"{result.ok}/{result.errors}"
    value = getattr(result, attr)
    if value is None:
        return "HANG" if result.status == "HANG" else "-"
    return fmt.format(value)


def table(results: list[LevelResult]) -> str:
    rows = [[head for head, _, _ in COLUMNS]]
    rows += [[_cell(r, attr, fmt) for _, attr, fmt in COLUMNS] for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(
            c.rjust(w) if i else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def ratios(results: list[LevelResult]) -> list[dict[str, Any]]:
    """certplane/Pebble per concurrency where both have a measurement."""
    by_key = {(r.target, r.concurrency): r for r in results}
    out = []
    for conc in sorted({r.concurrency for r in results}):
        cp, pb = by_key.get(("certplane", conc)), by_key.get(("pebble", conc))
        if cp is None or pb is None:
            continue
        out.append(_ratio(conc, cp, pb))
    return out


def _ratio(conc: int, cp: LevelResult, pb: LevelResult) -> dict[str, Any]:
    entry: dict[str, Any] = {"concurrency": conc, "certplane": cp.status, "pebble": pb.status}
    if cp.status != "ok" or pb.status != "ok":
        entry["verdict"] = f"not comparable (certplane {cp.status}, pebble {pb.status})"
        return entry
    assert cp.issuances_per_second and pb.issuances_per_second
    assert cp.server_cpu_ms_per_issuance is not None and pb.server_cpu_ms_per_issuance
    throughput = cp.issuances_per_second / pb.issuances_per_second
    cpu = cp.server_cpu_ms_per_issuance / pb.server_cpu_ms_per_issuance
    entry.update(
        throughput_ratio=round(throughput, 3),
        cpu_ratio=round(cpu, 3),
        p50_ratio=round((cp.p50_ms or 0) / (pb.p50_ms or 1), 3),
        throughput_target=f">= {MIN_THROUGHPUT_RATIO}",
        cpu_target=f"<= {MAX_CPU_RATIO}",
        throughput_met=throughput >= MIN_THROUGHPUT_RATIO,
        cpu_met=cpu <= MAX_CPU_RATIO,
    )
    entry["verdict"] = "PASS" if entry["throughput_met"] and entry["cpu_met"] else "MISS"
    return entry


def ratio_lines(entries: list[dict[str, Any]]) -> list[str]:
    lines = []
    for e in entries:
        if "throughput_ratio" not in e:
            lines.append(f"conc {e['concurrency']}: {e['verdict']}")
            continue
        lines.append(
            f"conc {e['concurrency']}: throughput certplane/pebble = {e['throughput_ratio']:.2f} "
            f"(target {e['throughput_target']}), CPU/issuance certplane/pebble = "
            f"{e['cpu_ratio']:.2f} (target {e['cpu_target']}), p50 ratio {e['p50_ratio']:.2f}"
            f" -> {e['verdict']}"
        )
    return lines


def evidence_lines(results: list[LevelResult]) -> list[str]:
    lines = []
    for r in results:
        where = f"{r.target} c={r.concurrency}"
        for err in r.first_errors:
            lines.append(f"{where} error: {err}")
        ev = r.evidence
        if r.status != "ok":
            lines.append(f"{where}: {r.status} during {ev.get('phase', 'measured phase')}")
            lines += [f"    in flight: {item}" for item in ev.get("in_flight", [])[:8]]
            lines += [f"    {n} x {g}" for g, n in ev.get("blocked_goroutines", [])]
            if "dump_file" in ev:
                lines.append(f"    stacks: {ev['dump_file']}")
        if "profile" in ev:
            lines += _profile_lines(where, ev["profile"], ev.get("profile_file", ""))
    return lines


def _profile_lines(where: str, profile: dict[str, Any], path: str) -> list[str]:
    lines = [f"{where} py-spy: {profile['samples']} samples ({path})"]
    lines.append(
        "    by library (leaf frame): "
        + ", ".join(f"{name} {pct}%" for name, pct in profile["libraries"])
    )
    lines.append("    top inclusive:")
    lines += [f"      {pct:5.1f}%  {name}" for name, pct in profile["inclusive"][:15]]
    lines.append("    top self:")
    lines += [f"      {pct:5.1f}%  {name}" for name, pct in profile["self"][:12]]
    return lines
