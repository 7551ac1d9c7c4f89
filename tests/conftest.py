"""Shared fixtures: one real local model server for the session, an isolated app environment,
the Streamlit app as a real process, and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.fault_server import FaultServer
from utils.local_server import LocalServer, free_port

APP_DIR = Path(__file__).resolve().parent.parent
#: Short replies keep the real-model tests quick; the length of a reply changes nothing they check.
TEST_MAX_TOKENS = "40"
#: Variables that would point Parley somewhere other than the test's local server.
PROVIDER_VARS = ("LLM_PROVIDER", "LLM_MODEL", "LLM_BASE_URL", "GROQ_API_KEY", "OPENAI_API_KEY", "LOCAL_MODEL_PATH")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def local_server():
    """The real SmolLM2 server, started once (or reused from LOCAL_LLM_PORT) and stopped at the end."""
    port = os.environ.get("LOCAL_LLM_PORT")
    server = LocalServer.ensure(int(port) if port else None, context_window=4096)
    yield server
    server.stop()


@pytest.fixture
def app_env(local_server, tmp_path, monkeypatch) -> Path:
    """Point the app at the session's local server and a fresh conversations file; return that file."""
    for name in PROVIDER_VARS:
        monkeypatch.delenv(name, raising=False)
    conversations = tmp_path / "conversations.json"
    monkeypatch.setenv("LOCAL_LLM_PORT", str(local_server.port))
    monkeypatch.setenv("CONVERSATIONS_FILE", str(conversations))
    monkeypatch.setenv("LLM_MAX_TOKENS", TEST_MAX_TOKENS)
    return conversations


@pytest.fixture
def fault():
    """The fault-injection OpenAI server (tests/fault_server.py), mode "ok" until a test sets it."""
    server = FaultServer().start()
    yield server
    server.stop()


@pytest.fixture
def streamlit_app(app_env):
    """`streamlit run Home.py` on a free port, as a real process; yields its URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "Home.py", "--server.port", str(port), "--server.headless", "true"],
        cwd=APP_DIR,
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as response:
                if response.status == 200:
                    break
        except OSError:
            time.sleep(0.3)
    else:
        process.kill()
        pytest.fail("streamlit run Home.py did not answer within 60 s")
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
