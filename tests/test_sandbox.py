"""The "Run Python" sandbox (utils/sandbox.py) under attack: each way out that was tried is a test.

The code runs in bubblewrap with its own user, PID, mount and network namespaces, an allow-listed
read-only file system and private 64 MB scratch folders; these tests show what it cannot reach,
that nothing it starts outlives it, and that its limits hold. They need bubblewrap, which
`make test` installs.
"""

from __future__ import annotations

import ast
import os
import socket
import subprocess
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import APP_DIR
from utils.sandbox import MAX_PROCESSES, OUTPUT_CAP_BYTES, SCRATCH_BYTES, isolation, run_python

pytestmark = pytest.mark.skipif(
    isolation() != "full", reason="bubblewrap cannot run here; make test installs it (and the tool is then off)"
)

#: Forks until the process limit refuses, and prints how many succeeded.
FORK_COUNTER = (
    "import os, time\nn = 0\nwhile True:\n    try:\n        pid = os.fork()\n    except OSError:\n        break\n"
    "    if pid == 0:\n        time.sleep(30)\n        os._exit(0)\n    n += 1\nprint(n)"
)


def processes_with(marker: str) -> list[str]:
    """This machine's processes whose command line holds ``marker``."""
    return subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout.split()


def test_the_sandbox_is_really_required():
    """The module-level skip must not hide a machine where `make test` should have made it work."""
    assert isolation() == "full"


# ----- limits ----------------------------------------------------------------------------


def test_code_runs_in_its_own_working_folder_which_is_gone_after():
    note = f"note-{uuid.uuid4().hex}.txt"
    result = run_python(f"import os\nopen({note!r}, 'w').write('kept')\nprint(open({note!r}).read(), os.getcwd())")
    assert result.exit_code == 0 and result.error is None
    text, folder = result.output.split()
    assert text == "kept" and folder == "/work"
    assert not any(Path(top, note).exists() for top in ("/work", tempfile.gettempdir()))  # nothing left here


def test_time_limit():
    result = run_python("while True:\n    pass", time_limit=2)
    assert result.timed_out and "time limit" in result.error


def test_memory_limit():
    result = run_python("block = bytearray(600 * 2**20)\nprint('allocated')", memory_mb=256)
    assert "allocated" not in result.output and "256 MB memory limit" in result.error


def test_output_is_capped():
    result = run_python("print('x' * 100_000)")
    assert result.truncated and len(result.output.encode()) == OUTPUT_CAP_BYTES


def test_a_fork_bomb_stops_at_the_process_limit_and_the_next_run_works():
    counted = run_python(FORK_COUNTER, time_limit=5)
    assert counted.output.strip().isdigit() and int(counted.output.strip()) < MAX_PROCESSES
    bomb = run_python("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass", 3)
    assert bomb.timed_out
    assert run_python("print(6 * 7)").output.strip() == "42"


# ----- nothing outlives a run --------------------------------------------------------------


def test_detached_and_double_forked_children_die_with_the_run():
    marker = f"parley-canary-{uuid.uuid4().hex}"
    code = textwrap.dedent(
        f"""
        import os, subprocess
        subprocess.Popen(["/usr/bin/python3", "-c", "import time; time.sleep(60)", {marker!r}], start_new_session=True)
        if os.fork() == 0:
            if os.fork() == 0:
                os.setsid()
                os.execv("/usr/bin/python3", ["/usr/bin/python3", "-c", "while True: pass", {marker!r}])
            os._exit(0)
        print("started")
        """
    )
    result = run_python(code, time_limit=5)
    assert result.output.strip() == "started" and not result.timed_out
    deadline = time.monotonic() + 5
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_with(marker) == []


def test_a_chain_of_cpu_burning_children_is_killed_at_the_time_limit():
    marker = f"parley-chain-{uuid.uuid4().hex}"
    code = (
        "import os\n"
        "for _ in range(4):\n"
        "    if os.fork():\n"
        "        break\n"
        "    os.setsid()\n"
        f"os.execv('/usr/bin/python3', ['/usr/bin/python3', '-c', 'while True: pass', {marker!r}])\n"
    )
    started = time.monotonic()
    result = run_python(code, time_limit=2)
    assert time.monotonic() - started < 10
    time.sleep(0.5)
    assert processes_with(marker) == [], result


def test_the_code_never_runs_as_parley_and_cannot_signal_it():
    result = run_python("import os, signal\nprint(os.getuid(), os.getppid())\nos.kill(os.getppid(), signal.SIGKILL)")
    uid, parent = (int(x) for x in result.output.split()[:2])
    if os.geteuid() == 0:
        assert uid != 0  # a fresh unprivileged uid, never root
    assert parent in (0, 1)  # inside its own PID namespace, it sees none of this machine's processes
    assert os.getpid() > 0  # and this process (Parley's stand-in) is alive to check it


# ----- nothing of this machine's is reachable ----------------------------------------------


@pytest.fixture
def canaries(tmp_path):
    """Files any user may read, in the app's folder and in a data folder, holding a secret."""
    secret = f"canary-{uuid.uuid4().hex}"
    in_app = APP_DIR / f".canary-{uuid.uuid4().hex}.txt"
    in_data = tmp_path / "conversations.json"
    for path in (in_app, in_data):
        path.write_text(secret, encoding="utf-8")
        path.chmod(0o644)
    yield secret, [in_app, in_data]
    in_app.unlink(missing_ok=True)


def test_files_of_the_app_its_data_and_home_cannot_be_read(canaries):
    secret, paths = canaries
    targets = [str(p) for p in paths] + [str(Path.home() / ".bashrc"), str(APP_DIR / ".streamlit" / "config.toml")]
    code = textwrap.dedent(
        f"""
        for p in {targets!r}:
            try:
                print(open(p).read())
            except OSError as e:
                print(type(e).__name__)
        """
    )
    result = run_python(code)
    assert secret not in result.output
    assert result.output.split() == ["FileNotFoundError"] * 4


def test_only_the_systems_programs_are_there():
    result = run_python("import os\nprint(sorted(os.listdir('/')))\nprint(sorted(os.listdir('/etc')))")
    top, etc = (ast.literal_eval(line) for line in result.output.splitlines())
    assert top == ["bin", "dev", "etc", "lib", "lib64", "proc", "sbin", "tmp", "usr", "work"]
    # the shared-library links, matplotlib's and fontconfig's settings: nothing of Parley's or a user's
    assert set(etc) <= {"ld.so.cache", "localtime", "alternatives", "matplotlibrc", "fonts"}


def test_a_unix_socket_open_to_everyone_in_the_temporary_folder_is_not_reachable():
    path = Path(tempfile.gettempdir()) / f"parley-canary-{uuid.uuid4().hex[:8]}.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    path.chmod(0o777)
    listener.listen()
    listener.setblocking(False)
    try:
        code = (
            f"import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect({str(path)!r})\ns.send(b'x')\nprint('SENT')"
        )
        result = run_python(code)
        assert "SENT" not in result.output and "FileNotFoundError" in result.output
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected
    finally:
        listener.close()
        path.unlink(missing_ok=True)


def test_an_abstract_unix_socket_and_a_tcp_port_on_loopback_are_not_reachable():
    abstract = socket.socket(socket.AF_UNIX)
    name = f"\0parley-canary-{uuid.uuid4().hex[:8]}"
    abstract.bind(name)
    abstract.listen()
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen()
    try:
        port = tcp.getsockname()[1]
        code = textwrap.dedent(
            f"""
            import socket
            for family, address in ((socket.AF_UNIX, {name!r}), (socket.AF_INET, ("127.0.0.1", {port}))):
                try:
                    socket.socket(family).connect(address)
                    print("CONNECTED")
                except OSError as e:
                    print(type(e).__name__)
            """
        )
        result = run_python(code)
        assert "CONNECTED" not in result.output and result.output.split() == ["ConnectionRefusedError"] * 2
    finally:
        abstract.close()
        tcp.close()


# ----- scratch space is private and bounded ------------------------------------------------


@pytest.mark.parametrize("folder", ["/work", "/tmp", "/dev/shm"])
def test_scratch_space_is_capped_and_nothing_is_left_on_this_machine(folder):
    before = set(os.listdir("/dev/shm")), set(os.listdir(tempfile.gettempdir()))
    code = (
        "n = 0\n"
        "try:\n"
        "    while True:\n"
        f"        open(f'{folder}/f{{n}}', 'wb').write(b'x' * 900_000)\n"
        "        n += 1\n"
        "except OSError as e:\n"
        "    print(n, e.errno)"
    )
    written, errno = (int(x) for x in run_python(code).output.split())
    assert errno == 28 and written * 900_000 <= SCRATCH_BYTES  # ENOSPC at the tmpfs's size
    after = set(os.listdir("/dev/shm")), set(os.listdir(tempfile.gettempdir()))
    assert after[0] <= before[0] and not any(name.startswith("f") and name[1:].isdigit() for name in after[1])


def test_the_root_devices_and_system_folders_are_read_only():
    code = (
        "for p in ('/x', '/dev/x', '/usr/x', '/etc/x'):\n"
        "    try:\n"
        "        open(p, 'w')\n"
        "        print('WROTE', p)\n"
        "    except OSError as e:\n"
        "        print(e.errno)"
    )
    assert run_python(code).output.split() == ["30"] * 4  # EROFS
