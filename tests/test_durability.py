"""Conversations are never lost: SIGKILL during saves (and no temp files left behind), two processes
saving at once, a read-only folder."""

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from llama_index.core.base.llms.types import MessageRole

from model.json_store import JsonFileStore
from model.message import Message

APP_DIR = Path(__file__).resolve().parent.parent
KILLS = 200
TURNS = 100


def _saver(path: Path, start: int, ack_fd: int) -> None:
    """Child: save conversation c<start>, c<start+1>, ... forever, acknowledging each returned save."""
    store = JsonFileStore(path)
    i = start
    while True:
        store.save(f"c{i}", [Message(MessageRole.USER, f"turn {i} " + "x" * (i % 300))])
        os.write(ack_fd, f"{i}\n".encode())
        i += 1


def test_sigkill_at_random_points_never_loses_a_returned_save(tmp_path):
    path = tmp_path / "conversations.json"
    rng = random.Random(1234)
    acknowledged: set[int] = set()
    next_index = 0
    for kill in range(KILLS):
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child never returns into pytest
            try:
                os.close(read_fd)
                _saver(path, next_index, write_fd)
            finally:
                os._exit(1)
        os.close(write_fd)
        time.sleep(rng.uniform(0.0, 0.03))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        with os.fdopen(read_fd) as acks:
            done = [int(line) for line in acks.read().splitlines() if line.strip()]
        acknowledged.update(done)
        next_index = max([next_index - 1, *done]) + 1
        if acknowledged:  # a returned save means the file exists from then on, whatever is killed later
            on_disk = json.loads(path.read_text(encoding="utf-8"))  # always parses
            missing = {f"c{i}" for i in acknowledged} - set(on_disk)
            assert not missing, f"saves that had returned were lost: {sorted(missing)[:5]}"
        # Each write removes the temp files of killed writers first: at most the last victim's is left.
        orphans = list(tmp_path.glob(".conversations.json.*.tmp"))
        assert len(orphans) <= 1, f"{len(orphans)} orphaned temp files after {kill + 1} kills"
    assert len(acknowledged) > KILLS / 4, "too few saves completed for the test to mean anything"
    assert not list(tmp_path.glob("conversations.json.corrupt-*"))
    JsonFileStore(path).save("after the kills", [Message.user("one more")])
    assert not list(tmp_path.glob(".conversations.json.*.tmp")), "the next write left an orphaned temp file"
    file_size = path.stat().st_size
    folder_size = sum(p.stat().st_size for p in tmp_path.iterdir() if p.is_file())
    assert folder_size <= file_size + 1024, f"folder holds {folder_size} bytes for a {file_size}-byte file"


def test_two_processes_adding_turns_at_once_lose_nothing(tmp_path):
    path = tmp_path / "conversations.json"
    script = textwrap.dedent(
        f"""
        import sys
        from model.json_store import JsonFileStore
        from model.message import Message
        store = JsonFileStore(sys.argv[1], lock_timeout=60)
        name, messages = sys.argv[2], []
        for i in range({TURNS}):
            messages.append(Message.user(f"{{name}} turn {{i}}"))
            store.save(name, messages)
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(path), name], cwd=APP_DIR) for name in ("alpha", "beta")
    ]
    assert [p.wait(120) for p in procs] == [0, 0]
    on_disk = json.loads(path.read_text(encoding="utf-8"))
    for name in ("alpha", "beta"):
        assert [m["content"] for m in on_disk[name]] == [f"{name} turn {i}" for i in range(TURNS)]


def _run_without_dac_override(code: str, *args: str) -> subprocess.CompletedProcess:
    """Run Python ``code`` so that folder permissions apply even when the tests run as root.

    Root's CAP_DAC_OVERRIDE ignores a read-only folder; ``setpriv`` (util-linux) drops it from the
    bounding set for the child, which keeps root's own (owner) permissions on everything else.
    """
    prefix = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
    return subprocess.run(
        [*prefix, sys.executable, "-c", code, *args],
        cwd=APP_DIR,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_read_only_folder_keeps_file_and_session_and_shows_an_error(tmp_path, app_env):
    """A save into a read-only folder, driven through the memory page (AppTest) as a normal user."""
    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "conversations.json"
    original = json.dumps({"Kept": [{"role": "user", "content": "old"}]})
    path.write_text(original, encoding="utf-8")
    os.chmod(folder, 0o555)
    code = textwrap.dedent(
        """
        import json, os, sys
        os.environ["CONVERSATIONS_FILE"] = sys.argv[1]
        from streamlit.testing.v1 import AppTest
        at = AppTest.from_file(sys.argv[2], default_timeout=120).run()
        at.chat_input[0].set_value("Please keep this message").run()
        next(b for b in at.sidebar.button if b.label == "Save").click().run()
        at.sidebar.text_input(key="memory_save_name").input("New one")
        next(b for b in at.sidebar.button if b.label == "Confirm Save").click().run()
        print(json.dumps({
            "errors": [e.value for e in at.error],
            "exception": [str(e.value) for e in at.exception],
            "messages": [m.content for m in at.session_state["memory_chat"].messages],
        }))
        """
    )
    try:
        result = _run_without_dac_override(code, str(path), str(APP_DIR / "pages" / "2_Chatbot_With_Memory.py"))
    finally:
        os.chmod(folder, 0o755)
    assert result.returncode == 0, result.stderr[-2000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert not seen["exception"]
    assert any("not changed" in e and "Could not" in e for e in seen["errors"]), seen["errors"]
    assert seen["messages"][0] == "Please keep this message" and len(seen["messages"]) == 2
    assert path.read_text(encoding="utf-8") == original
