"""Evidence for a slow or stuck server: py-spy for certplane, goroutine dumps for Pebble.

py-spy (``pip install py-spy`` into the venv; not a project dependency) samples the certplane
process during the measured phase; `summarize_collapsed` turns its collapsed stacks into self
and inclusive percentages per function and a per-library rollup of where the samples landed.
"""

from __future__ import annotations

import collections
import contextlib
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from cpbench.procs import spawn, stop

_FRAME_LINE = re.compile(r"^(?P<func>.*) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")
# Leaf frames that are a thread waiting, not working: py-spy cannot tell a thread blocked in
# SimpleQueue.get (aiosqlite's worker) or epoll (the event loop) from one that runs.
WAITING_LEAVES = frozenset(
    {
        ("_connection_worker_thread", "aiosqlite/core.py"),
        ("select", "selectors.py"),
        ("wait", "threading.py"),
        ("_worker", "concurrent/futures/thread.py"),
    }
)
LIBRARIES = (
    ("sqlalchemy", "sqlalchemy"),
    ("aiosqlite/sqlite3", "aiosqlite"),
    ("aiosqlite/sqlite3", "sqlite3"),
    ("aiohttp", "aiohttp"),
    ("aiohttp", "multidict"),
    ("aiohttp", "yarl"),
    ("cryptography", "cryptography"),
    ("logging", "logging"),
    ("json", "json"),
    ("asyncio", "asyncio"),
    ("certplane", "/server/"),
    ("certplane", "/ca/"),
    ("certplane", "/policy/"),
    ("certplane", "certplane"),
)


def py_spy() -> str | None:
    found = Path(sys.executable).parent / "py-spy"
    return str(found) if found.exists() else shutil.which("py-spy")


class PySpyRecorder:
    """``py-spy record --format raw`` on one pid until `finish` (SIGINT makes it write)."""

    def __init__(self, pid: int, output: Path, flags: str = "--nonblocking", rate: int = 250):
        exe = py_spy()
        if exe is None:
            raise RuntimeError("py-spy not found: .venv/bin/pip install py-spy")
        self.output = output
        argv = [exe, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw"]
        argv += [*flags.split(), "--output", str(output)]
        self._proc = spawn(argv, output.with_suffix(".log"), cwd=output.parent)

    def finish(self) -> None:
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(15)
        stop(self._proc)


def py_spy_dump(pid: int) -> str:
    """Every thread's Python stack right now (for a certplane that hangs)."""
    exe = py_spy()
    if exe is None:
        return "(py-spy not installed)"
    done = subprocess.run(
        [exe, "dump", "--nonblocking", "--pid", str(pid)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return done.stdout + done.stderr


def _frame_key(frame: str) -> tuple[str, str]:
    match = _FRAME_LINE.match(frame.strip())
    if match is None:
        return frame.strip(), ""
    return match["func"], match["file"]


def _is_waiting(leaf: tuple[str, str]) -> bool:
    func, path = leaf
    return any(func.endswith(f) and path.endswith(p) for f, p in WAITING_LEAVES)


def _library(path: str) -> str:
    return next((name for name, marker in LIBRARIES if marker in path), "other")


def _short(func: str, path: str) -> str:
    parts = Path(path).parts
    for anchor in ("site-packages", "main", "python3.11"):
        if anchor in parts:
            parts = parts[parts.index(anchor) + 1 :]
            break
    return f"{func} ({'/'.join(parts[-3:])})"


def summarize_collapsed(path: Path, top: int = 20) -> dict[str, Any]:
    """Self, inclusive and per-library percentages of the samples in a collapsed-stack file."""
    self_counts: collections.Counter[str] = collections.Counter()
    incl_counts: collections.Counter[str] = collections.Counter()
    libs: collections.Counter[str] = collections.Counter()
    total = waiting = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_key(f) for f in stack.split(";")]
        leaf = frames[-1]
        if _is_waiting(leaf):
            waiting += count
            continue
        total += count
        self_counts[_short(*leaf)] += count
        libs[_library(leaf[1])] += count
        for name in {_short(*f) for f in frames}:
            incl_counts[name] += count

    def pct(counter: collections.Counter[str]) -> list[tuple[str, float]]:
        return [(k, round(100.0 * v / max(total, 1), 1)) for k, v in counter.most_common(top)]

    return {
        "samples": total,
        "waiting_samples_dropped": waiting,
        "self": pct(self_counts),
        "inclusive": pct(incl_counts),
        "libraries": pct(libs),
    }


_GOROUTINE_HEAD = re.compile(r"^goroutine \d+ \[(?P<state>[^\]]+)\]:")


def summarize_goroutines(dump: str, top: int = 12) -> list[tuple[str, int]]:
    """Blocked goroutines grouped by state and the first Pebble frames of their stacks."""
    groups: collections.Counter[str] = collections.Counter()
    for block in dump.split("\n\n"):
        lines = block.strip().splitlines()
        head = _GOROUTINE_HEAD.match(lines[0]) if lines else None
        if head is None or not any(s in head["state"] for s in ("semacquire", "sync.")):
            continue
        pebble = [
            ln.rpartition("(")[0].rsplit("/", 1)[-1]
            for ln in lines[1::2]
            if "letsencrypt/pebble" in ln
        ]
        groups[f"[{head['state']}] " + " <- ".join(pebble[:3])] += 1
    return groups.most_common(top)
