"""Where one streamed reply's time goes on its way from the model to the browser.

``python -m bench.run --profile`` (and ``make bench``, which writes it into RESULTS.md): one browser
turn on the Simple Chat page, with

- the CPU seconds each process spent during the reply, read from ``/proc/<pid>/stat`` (utime +
  stime of every thread): the model server, the Streamlit app, Chromium (every chromium process),
  and the benchmark itself (Playwright's driver), as shares of the machine (wall time × cores);
- the model server's CPU for the same reply streamed straight to the SDK, the baseline;
- py-spy's samples of the app process during the reply (``py-spy record --format raw``, active
  samples only), summed per function and per thread, the functions that took most.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

#: Clock ticks per second of /proc's CPU times.
TICKS = os.sysconf("SC_CLK_TCK")
#: py-spy's samples per second.
SPY_RATE = 250


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system, every thread) the process ``pid`` used so far; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def pids_matching(pattern: str) -> list[int]:
    """Processes whose command line contains ``pattern``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if pattern in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


class CpuMeter:
    """CPU seconds of named groups of processes between ``start`` and ``stop``."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self.before: dict[int, float] = {}
        self.wall = 0.0

    def start(self) -> None:
        self.before = {pid: cpu_seconds(pid) for pids in self.groups.values() for pid in pids}
        self.wall = time.perf_counter()

    def stop(self) -> dict[str, float]:
        wall = time.perf_counter() - self.wall
        used = {
            name: sum(max(0.0, cpu_seconds(pid) - self.before.get(pid, 0.0)) for pid in pids)
            for name, pids in self.groups.items()
        }
        used["wall"] = wall
        return used


class Spy:
    """``py-spy record`` of one process, from ``start`` until ``stop``; ``stop`` returns its stacks."""

    def __init__(self, pid: int) -> None:
        self.out = Path(tempfile.mkdtemp()) / "stacks.txt"
        self.process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "py-spy"),
                "record",
                "--pid",
                str(pid),
                "--rate",
                str(SPY_RATE),
                "--format",
                "raw",
                "--threads",
                "--nonblocking",
                "--output",
                str(self.out),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.5)  # attached

    def stop(self) -> dict[str, int]:
        self.process.send_signal(signal.SIGINT)
        self.process.wait(30)
        stacks: dict[str, int] = {}
        for line in self.out.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if count.isdigit():
                stacks[stack] = stacks.get(stack, 0) + int(count)
        return stacks


#: Frames every thread or the event loop runs under, left out of the inclusive counts.
_GENERIC = re.compile(r"\((threading|runpy|<frozen runpy>|asyncio/(base_events|runners)|uvicorn/|concurrent/)")
_FRAME = re.compile(r"^(?P<func>[^ ]+) \((?P<file>[^:)]+)")


def _where(frame: str) -> str:
    """``func (package/module)`` of one py-spy frame."""
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    path = match["file"]
    for marker in ("site-packages/", "/main/", "/work/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match['func']} ({path})"


def summarise(stacks: dict[str, int], top: int = 12) -> dict:
    """Samples per thread, and the ``top`` functions by samples spent in them (self) and under them
    (inclusive), from py-spy's raw stacks."""
    threads: Counter[str] = Counter()
    own: Counter[str] = Counter()
    under: Counter[str] = Counter()
    for stack, count in stacks.items():
        frames = stack.split(";")
        thread, frames = frames[0], frames[1:]
        threads[re.sub(r"^thread \(\w+\):\s*", "", thread).strip() or thread] += count
        if frames:
            own[_where(frames[-1])] += count
            for where in {_where(f) for f in frames if not _GENERIC.search(f)}:
                under[where] += count
    total = sum(threads.values()) or 1
    return {
        "samples": total,
        "threads": threads.most_common(6),
        "self": own.most_common(top),
        "inclusive": under.most_common(top),
    }
