"""Child processes on loopback: start, CPU accounting from /proc, and a guaranteed stop.

Every process the benchmark starts is registered here and stopped by its own pid (terminate,
then kill) when the benchmark ends, however it ends.
"""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
STOP_GRACE_SECONDS = 5.0

_started: list[subprocess.Popen[bytes]] = []


def free_port(*, udp_too: bool = False) -> int:
    """A loopback port free for TCP (and UDP when asked) right now; bounded attempts."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            if not udp_too or _udp_free(port):
                return port
    raise RuntimeError("no free loopback port found in 50 attempts")


def _udp_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        try:
            udp.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def spawn(argv: Sequence[str], log: Path, *, cwd: Path, env: dict[str, str] | None = None):
    """Start ``argv`` with stdout and stderr appended to ``log``; registered for stop_all."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _started.append(proc)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate by pid, kill after a grace period; idempotent."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_GRACE_SECONDS)
    if proc in _started:
        _started.remove(proc)


@atexit.register
def stop_all() -> None:
    for proc in list(_started):
        stop(proc)


def cpu_ticks(pid: int) -> int:
    """utime + stime of the whole thread group, plus reaped children (/proc/<pid>/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state): utime=14, stime=15, cutime=16, cstime=17.
    return sum(int(fields[i]) for i in (11, 12, 13, 14))


def thread_ticks(pid: int) -> dict[str, int]:
    """utime + stime of the main thread and of all other live threads (/proc/<pid>/task)."""
    totals = {"main thread": 0, "other threads": 0}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        key = "main thread" if task.name == str(pid) else "other threads"
        totals[key] += int(fields[11]) + int(fields[12])
    return totals


def host_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine (/proc/stat), to see who else used the CPUs."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # guest time is already in user
    return total - idle, total


def ticks_to_ms(ticks: int) -> float:
    return ticks * 1000.0 / CLK_TCK
