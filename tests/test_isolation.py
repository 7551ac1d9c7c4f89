"""Tests never use a developer's real keys, and leave the checkout as they found it."""

import os
import subprocess
import sys
from pathlib import Path

from settings import DEFAULT_SECRETS_FILE, Settings
from tests.conftest import FAKE_SECRETS_MARK
from tests.fake_keys import GROQ, fake
from tests.test_pages import HOME, run

APP_DIR = Path(__file__).resolve().parent.parent
REAL_LOOKING_KEY = fake(GROQ, "in_the_real_secrets_file_0000")


def _with_a_key_in_the_real_secrets_file(check) -> None:
    """Run ``check()`` while .streamlit/secrets.toml holds a Groq key.

    A developer's own file is used as it is and never changed; where there is none, a fake one is
    written for the check (marked, so that conftest removes it if this run is killed) and removed.
    """
    if DEFAULT_SECRETS_FILE.exists():
        check()
        return
    DEFAULT_SECRETS_FILE.parent.mkdir(exist_ok=True)
    DEFAULT_SECRETS_FILE.write_text(
        f'{FAKE_SECRETS_MARK}\nGROQ_API_KEY = "{REAL_LOOKING_KEY}"\nLLM_PROVIDER = "groq"\n', encoding="utf-8"
    )
    try:
        check()
    finally:
        DEFAULT_SECRETS_FILE.unlink()


def test_a_key_in_the_real_secrets_file_is_not_seen(app_env, monkeypatch):
    def check() -> None:
        if DEFAULT_SECRETS_FILE.read_text(encoding="utf-8").startswith(FAKE_SECRETS_MARK):
            with monkeypatch.context() as real:  # the file would be read without the tests' isolation
                real.delenv("PARLEY_SECRETS_FILE")
                assert Settings().provider == "groq"
        in_process = Settings()
        assert (in_process.provider, in_process.groq_api_key, in_process.openai_api_key) == ("local", None, None)
        child = subprocess.run(
            [sys.executable, "-c", "from settings import Settings; s = Settings(); print(s.provider, s.groq_api_key)"],
            cwd=APP_DIR,
            capture_output=True,
            text=True,
            check=True,
        )
        assert child.stdout.split() == ["local", "None"], "a process started by a test read the real secrets"
        home = " ".join(m.value for m in run(HOME).markdown)
        assert "**Provider:** Local" in home and "**Provider:** Groq" not in home

    _with_a_key_in_the_real_secrets_file(check)


def test_conftest_points_every_app_at_temporary_files(app_env):
    """The files the app writes (conversations, knowledge bases, secrets) are all outside the checkout;
    conftest's ``checkout_left_as_found`` checks the checkout itself after the whole run."""
    for name in ("CONVERSATIONS_FILE", "KNOWLEDGE_BASE_DIR", "PARLEY_SECRETS_FILE"):
        assert not Path(os.environ[name]).resolve().is_relative_to(APP_DIR), name
