"""The local model's generation threads, chosen by measuring: made once, reused, redone when the model
file changes, overridden by LOCAL_LLM_THREADS, and said on the page while it runs."""

import json
import os
import shutil
from pathlib import Path

import pytest

from utils import thread_tuning
from utils.local_server import LocalServer, find_local_model, will_tune
from utils.thread_tuning import (
    TUNING_NOTICE,
    cache_key,
    cache_path,
    cached_entry,
    candidates,
    core_count,
    fallback_threads,
    tuned_threads,
)
from view.common import starting_notice


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty cache folder for this test; returns threads.json's path."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "parley" / "threads.json"


@pytest.fixture
def model_copy(tmp_path) -> Path:
    """A copy of the bundled GGUF (98 MB), whose modification time a test may change."""
    copy = tmp_path / "model.gguf"
    shutil.copyfile(find_local_model(), copy)
    return copy


def counting(monkeypatch, rates: dict[int, float] | None = None) -> list[list[int]]:
    """Record each measurement's thread counts; measure for real unless ``rates`` are given."""
    calls: list[list[int]] = []
    real = thread_tuning.measure

    def measure(model: Path, counts: list[int]) -> dict[int, float]:
        calls.append(list(counts))
        return dict(rates) if rates is not None else real(model, counts)

    monkeypatch.setattr(thread_tuning, "measure", measure)
    return calls


def test_candidates_cover_every_small_count_and_a_few_large_ones():
    assert candidates(1) == [1]
    assert candidates(2) == [1, 2]
    assert candidates(8) == list(range(1, 9))
    assert candidates(64) == [1, 2, 4, 8, 16, 32, 63, 64]


def test_the_cache_is_under_xdg_cache_home_or_home(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_path() == tmp_path / "parley" / "threads.json"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_path() == tmp_path / "home" / ".cache" / "parley" / "threads.json"


@pytest.mark.model
def test_measured_once_on_the_real_model_then_reused(cache, model_copy, monkeypatch):
    calls = counting(monkeypatch)
    assert will_tune(model_copy, None)
    best = tuned_threads(model_copy)
    assert calls == [candidates(core_count())]  # every candidate measured, once
    entry = json.loads(cache.read_text(encoding="utf-8"))[cache_key(model_copy)]
    rates = {int(n): r for n, r in entry["rates"].items()}
    assert sorted(rates) == candidates(core_count()) and all(r > 0 for r in rates.values())
    assert entry["threads"] == best == max(rates, key=lambda n: rates[n])  # the fastest is kept
    assert not will_tune(model_copy, None)

    assert tuned_threads(model_copy) == best  # reused: no second measurement
    assert len(calls) == 1


def test_measured_again_when_the_model_file_changes(cache, model_copy, monkeypatch):
    calls = counting(monkeypatch, {1: 50.0, 2: 80.0})
    assert tuned_threads(model_copy) == 2
    stat = model_copy.stat()
    os.utime(model_copy, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))  # a new file
    assert will_tune(model_copy, None)
    calls_after = counting(monkeypatch, {1: 90.0, 2: 80.0})
    assert tuned_threads(model_copy) == 1
    assert len(calls) == 1 and len(calls_after) == 1
    assert len(json.loads(cache.read_text(encoding="utf-8"))) == 2  # one entry per file version


def test_a_failed_measurement_falls_back_and_keeps_nothing(cache, model_copy, monkeypatch):
    def broken(model, counts):
        raise RuntimeError("the child died")

    monkeypatch.setattr(thread_tuning, "measure", broken)
    assert tuned_threads(model_copy) == fallback_threads()
    assert cached_entry(model_copy) is None
    assert not cache.exists()


@pytest.mark.model
def test_the_variable_overrides_and_the_server_uses_the_kept_count(cache, monkeypatch):
    calls = counting(monkeypatch, {1: 10.0, 2: 20.0})
    model = find_local_model()
    assert not will_tune(model, 1)  # LOCAL_LLM_THREADS set: nothing to measure
    server = LocalServer.ensure(None, context_window=512, threads=1)
    try:
        assert _threads_of(server) == "1"
    finally:
        server.stop()
    assert calls == [] and not cache.exists()

    cache.parent.mkdir(parents=True)
    kept = {"threads": 2, "rates": {"1": 10.0, "2": 20.0}, "measured": "2026-12-01T00:00:00Z"}
    cache.write_text(json.dumps({cache_key(model): kept}), encoding="utf-8")
    server = LocalServer.ensure(None, context_window=512)
    try:
        assert _threads_of(server) == "2"  # the kept count, not nproc - 1, and nothing measured
    finally:
        server.stop()
    assert calls == []


def _threads_of(server: LocalServer) -> str:
    """The ``--n_threads`` the server process was started with."""
    assert server.process is not None
    args = Path(f"/proc/{server.process.pid}/cmdline").read_bytes().decode().split("\0")
    return args[args.index("--n_threads") + 1]


def test_the_page_says_it_is_tuning_while_it_measures(cache):
    usual = "Starting the local model…"
    assert starting_notice(usual, None, None) == TUNING_NOTICE == "Tuning the local model for this machine…"
    assert starting_notice(usual, None, 2) == usual  # LOCAL_LLM_THREADS: no measurement
