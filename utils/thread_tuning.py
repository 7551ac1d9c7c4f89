"""How many threads the local model server generates with: measured once per machine and model.

A fixed rule is wrong on one machine or another: on one 2-core machine 1 and 2 generation threads
gave the same rate, on another of the same kind 2 threads were 40% faster. So the first start of a
local model server on a machine (and again when the model file or the CPU changes) measures a short
greedy generation with each candidate thread count, in a child process, and keeps the fastest in
``$XDG_CACHE_HOME/parley/threads.json`` (default ``~/.cache``)::

    {"<model path>|<size>|<mtime ns>|<CPU model>|<cores>": {"threads": 2,
      "rates": {"1": 61.2, "2": 88.4}, "measured": "2026-12-01T02:00:00Z"}}

``rates`` are tokens per second of generation (first token to last). LOCAL_LLM_THREADS, when set,
is used as it is and nothing is measured. A measurement that fails falls back to ``nproc - 1``.
Run as ``python -m utils.thread_tuning MODEL N...``, this module is that child: it prints the rates
as one JSON object.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

log = logging.getLogger(__name__)

#: What the page says while the measurement runs.
TUNING_NOTICE = "Tuning the local model for this machine…"
#: Tokens generated per candidate, at most; and seconds per candidate, at most (a big model stops
#: at the time limit, so tuning stays a few seconds whatever the model).
MEASURE_TOKENS = 64
MEASURE_SECONDS = 2.0
#: Seconds the whole measurement (every candidate, model loads included) may take.
TUNING_TIMEOUT = 60.0
#: The greedy prompt measured: one that a small model answers at length.
MEASURE_PROMPT = "Once upon a time, in a small village by the sea, there lived"


def cache_path() -> Path:
    """``$XDG_CACHE_HOME/parley/threads.json``, ``~/.cache/parley/threads.json`` without the variable."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "parley" / "threads.json"


@functools.cache
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``'s first "model name"), or the platform's word for it."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def core_count() -> int:
    """The cores this process may run on (its CPU affinity where the platform says; else ``os.cpu_count``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def fallback_threads() -> int:
    """``nproc - 1`` (at least 1): the count used when a measurement fails."""
    return max(1, core_count() - 1)


def candidates(cores: int) -> list[int]:
    """The thread counts worth measuring on ``cores`` cores: every count up to 8, then powers of two
    and the last two counts (so 64 cores measure 1, 2, 4, 8, 16, 32, 63 and 64, not 64 counts)."""
    if cores <= 8:
        return list(range(1, cores + 1))
    counts = {1 << i for i in range(cores.bit_length()) if 1 << i <= cores}
    return sorted(counts | {cores - 1, cores})


def cache_key(model: Path) -> str:
    """The cache entry of ``model`` on this machine: its path, size and modification time, the CPU
    model and the core count, so that a changed file or CPU is measured again.

    Raises:
        OSError: ``model`` cannot be read.
    """
    stat = model.stat()
    return f"{model.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{cpu_model()}|{core_count()}"


def _read_cache() -> dict[str, Any]:
    try:
        data = json.loads(cache_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def cached_entry(model: Path) -> dict[str, Any] | None:
    """The kept measurement of ``model`` on this machine (``threads``, ``rates``, ``measured``), or None."""
    try:
        entry = _read_cache().get(cache_key(model))
    except OSError:
        return None
    if isinstance(entry, dict) and isinstance(entry.get("threads"), int) and entry["threads"] >= 1:
        return entry
    return None


def needs_tuning(model: Path, override: int | None) -> bool:
    """True when starting a server of ``model`` will measure first (no LOCAL_LLM_THREADS, nothing kept)."""
    return override is None and cached_entry(model) is None


def measure(model: Path, counts: list[int]) -> dict[int, float]:
    """Tokens per second of a short greedy generation of ``model`` with each of ``counts`` threads,
    measured in a child process (so llama.cpp never loads into the caller).

    Raises:
        RuntimeError: the child failed, printed something else, or took over ``TUNING_TIMEOUT`` s.
    """
    command = [sys.executable, "-m", "utils.thread_tuning", str(model), *map(str, counts)]
    try:
        done = subprocess.run(
            command,
            cwd=Path(__file__).resolve().parent.parent,
            capture_output=True,
            text=True,
            timeout=TUNING_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"measuring took over {TUNING_TIMEOUT:.0f} s") from exc
    lines = done.stdout.strip().splitlines()
    try:
        rates = {int(k): float(v) for k, v in json.loads(lines[-1]).items()}
    except (IndexError, ValueError, AttributeError) as exc:
        raise RuntimeError(f"the measurement failed (exit {done.returncode}): {done.stderr[-300:]}") from exc
    if not rates or not all(r > 0 for r in rates.values()):
        raise RuntimeError(f"the measurement gave no rate: {rates}")
    return rates


def tuned_threads(model: Path) -> int:
    """The generation threads for ``model`` on this machine: kept from an earlier measurement, or
    measured now (a few seconds; one process at a time, under the cache's lock) and kept. A failed
    measurement is logged and gives ``fallback_threads()``, and nothing is kept."""
    path = cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(path) + ".lock", timeout=TUNING_TIMEOUT + 10):
            entry = cached_entry(model)
            if entry is not None:
                return int(entry["threads"])
            rates = measure(model, candidates(core_count()))
            best = max(rates, key=lambda n: rates[n])
            data = _read_cache()
            data[cache_key(model)] = {
                "threads": best,
                "rates": {str(n): round(r, 1) for n, r in sorted(rates.items())},
                "measured": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
            os.replace(tmp, path)
            log.info("local model %s: %d generation threads (tokens/s by threads: %s)", model.name, best, rates)
            return best
    except (OSError, RuntimeError, Timeout) as exc:
        log.warning("could not measure the local model's threads (%s); using %d", exc, fallback_threads())
        return fallback_threads()


def _rate(llm: Any, deadline_seconds: float) -> float:
    """Tokens per second from the first streamed token to the last, greedy, at most
    ``MEASURE_TOKENS`` tokens or ``deadline_seconds``."""
    stamps: list[float] = []
    start = time.perf_counter()
    for _ in llm.create_completion(MEASURE_PROMPT, max_tokens=MEASURE_TOKENS, temperature=0.0, stream=True):
        stamps.append(time.perf_counter())
        if stamps[-1] - start > deadline_seconds:
            break
    if len(stamps) < 3:
        return 0.0
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def _main(argv: list[str]) -> int:
    """The child: load the model once per count, warm it up, and print ``{count: tokens/s}``."""
    from llama_cpp import Llama

    model, counts = argv[0], [int(a) for a in argv[1:]]
    rates: dict[str, float] = {}
    for count in counts:
        llm = Llama(model, n_threads=count, n_threads_batch=core_count(), n_ctx=256, verbose=False)
        llm.create_completion(MEASURE_PROMPT, max_tokens=4, temperature=0.0)  # warm-up
        rates[str(count)] = _rate(llm, MEASURE_SECONDS)
        llm.close()
    print(json.dumps(rates))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
