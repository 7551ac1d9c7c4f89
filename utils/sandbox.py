"""Run untrusted Python code (the agent's "run Python" tool) in a separate, limited process.

Each run gets a new temporary working folder (deleted afterwards) and a fresh ``python -I -B``
process with these limits, set with ``resource.setrlimit`` before it starts:

- time: ``time_limit`` seconds of wall clock (the process tree is killed) and of CPU (RLIMIT_CPU);
- memory: ``memory_mb`` MB of address space (RLIMIT_AS);
- processes: ``MAX_PROCESSES`` (RLIMIT_NPROC), so a fork bomb fails to fork instead of filling
  the machine. RLIMIT_NPROC counts all processes of a user and does not apply to root, so when
  Parley runs as root the code runs as a new unprivileged uid each time (``_run_as``: no
  leftover of an earlier run counts against the next); otherwise the limit is the user's
  current count plus ``MAX_PROCESSES``;
- output: stdout and stderr go to one unlinked file capped by RLIMIT_FSIZE at ``FSIZE_BYTES``;
  the first ``output_cap`` bytes are kept and the rest is cut with a note.

Isolation, the best the machine allows (``isolation()``):

- ``full``: Debian's bubblewrap (``bwrap``) gives the process its own network namespace (no
  network: not even 127.0.0.1), PID namespace (its processes die with it) and a read-only view of
  the file system in which only the working folder is writable;
- ``network``: ``unshare -n`` gives it its own network namespace; writes are limited only by the
  user's file permissions;
- ``none``: neither works (no namespaces allowed); the UI says so.
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

#: Default wall-clock and CPU time limit, in seconds.
TIME_LIMIT_SECONDS = 10.0
#: Default address-space limit, in MB (2**20 bytes).
MEMORY_LIMIT_MB = 256
#: Default bytes of output kept (stdout and stderr together).
OUTPUT_CAP_BYTES = 20_000
#: Largest file (the output included) the code may write, in bytes; past it the process gets SIGXFSZ.
FSIZE_BYTES = 1_000_000
#: Most processes (and threads) the code may have at once.
MAX_PROCESSES = 16
#: The interpreter that runs the code: the system's Python (standard library only; Parley's venv
#: and an interpreter under a home folder are closed to the unprivileged user), else Parley's own.
PYTHON = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else os.path.realpath(sys.executable)
#: Unprivileged uids (and gids) the code runs as when Parley runs as root: one picked at random
#: from this range per run (no passwd entry is needed).
RUN_AS_UIDS = range(1_000_000, 2_000_000)

ISOLATION_NOTES = {
    "full": "Python runs with no network, a read-only file system except its own temporary folder, "
    "and limits on time, memory, processes and output.",
    "network": "Python runs with no network and limits on time, memory, processes and output, but files "
    "outside its folder are protected only by file permissions: install bubblewrap "
    "(`sudo apt-get install bubblewrap`) for a read-only file system.",
    "none": "This machine does not allow network namespaces, so Python code is NOT cut off from the "
    "network and files outside its folder are protected only by file permissions (it still has limits "
    "on time, memory, processes and output). Install bubblewrap (`sudo apt-get install bubblewrap`) "
    "or allow user namespaces to isolate it.",
}


@dataclass(frozen=True)
class RunResult:
    """What a run of code gave.

    Attributes:
        output: stdout and stderr interleaved, decoded as UTF-8 (bad bytes replaced), at most
            ``output_cap`` bytes.
        exit_code: the process's exit code; negative for a signal (e.g. -9 killed).
        timed_out: True when it ran past the time limit and was killed.
        truncated: True when the output was longer than the cap and was cut.
        isolation: ``full``, ``network`` or ``none`` (see the module's docstring).
        error: one line saying why the run failed (time, memory, output), or None when it exited 0.
    """

    output: str
    exit_code: int
    timed_out: bool
    truncated: bool
    isolation: str
    error: str | None


def _works(command: list[str], user: int | None) -> bool:
    """True if ``command`` (a sandbox prefix followed by ``true``) runs and exits 0."""
    try:
        done = subprocess.run(
            [*command, "true"],
            capture_output=True,
            timeout=10,
            user=user,
            group=user,
            extra_groups=None if user is None else [],
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def _user() -> int | None:
    """The uid to run code as: a random one from ``RUN_AS_UIDS`` when this process is root, else
    None (stay this user)."""
    return random.choice(RUN_AS_UIDS) if os.geteuid() == 0 else None


def _process_limit(user: int | None) -> int:
    """RLIMIT_NPROC for a run: ``MAX_PROCESSES`` for a fresh uid, else this user's tasks (processes
    and threads, counted in /proc) plus ``MAX_PROCESSES``."""
    if user is not None:
        return MAX_PROCESSES
    uid, tasks = os.getuid(), 0
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and entry.stat().st_uid == uid:
                tasks += len(os.listdir(entry / "task"))
        except OSError:
            continue
    return tasks + MAX_PROCESSES


def _bwrap(folder: str) -> list[str]:
    """The bubblewrap prefix: own user, network and PID namespaces, read-only root, ``folder`` writable."""
    return [
        "bwrap",
        "--unshare-user",
        "--unshare-net",
        "--unshare-pid",
        "--unshare-ipc",
        "--die-with-parent",
        "--new-session",
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--bind",
        folder,
        folder,
        "--chdir",
        folder,
    ]


@functools.cache
def isolation() -> str:
    """The isolation this machine allows: ``full`` (bubblewrap), ``network`` (``unshare``) or
    ``none``. Probed once per process by running ``true`` in each (at most 10 s each)."""
    if shutil.which("bwrap") and _works(_bwrap("/"), _user()):
        return "full"
    return "network" if _unshare() else "none"


@functools.cache
def _unshare() -> tuple[str, ...]:
    """The ``unshare`` command that gives a new network namespace here, probed once: ``-rn`` (with a
    user namespace, as the unprivileged user the code runs as), else ``-n`` as root; () if neither."""
    if not shutil.which("unshare"):
        return ()
    if _works(["unshare", "-rn"], _user()):
        return ("unshare", "-rn")
    if os.geteuid() == 0 and _works(["unshare", "-n"], None):
        return ("unshare", "-n")
    return ()


def _prefix(level: str, folder: str, user: int | None) -> tuple[list[str], int | None]:
    """The command prefix for ``level`` and the uid to start it as, for code that runs as ``user``.

    ``unshare -n`` needs root, so it is started as root and ``setpriv`` (util-linux) drops to
    ``user`` inside the new namespace: RLIMIT_NPROC does not apply to root.
    """
    if level == "full":
        return _bwrap(folder), user
    command = list(_unshare()) if level == "network" else []
    if command == ["unshare", "-n"] and user is not None:
        return [*command, "setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"], None
    return command, user


def _limits(time_limit: float, memory_mb: int, processes: int) -> None:
    """preexec_fn: the resource limits, set in the child before it starts the sandbox."""
    cpu = int(time_limit) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    resource.setrlimit(resource.RLIMIT_AS, (memory_mb * 2**20, memory_mb * 2**20))
    resource.setrlimit(resource.RLIMIT_FSIZE, (FSIZE_BYTES, FSIZE_BYTES))
    resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run_python(
    code: str,
    time_limit: float = TIME_LIMIT_SECONDS,
    memory_mb: int = MEMORY_LIMIT_MB,
    output_cap: int = OUTPUT_CAP_BYTES,
) -> RunResult:
    """Run ``code`` as a Python script in a new sandboxed process and return what it printed.

    Args:
        code: Python source (run as ``main.py`` in a new temporary folder, its working directory).
        time_limit: seconds before the process tree is killed (also its CPU-time limit).
        memory_mb: address-space limit in MB.
        output_cap: bytes of output kept.

    Returns:
        a RunResult; the code's own failures (exceptions, limits hit) are in it, not raised.

    Raises:
        OSError: the temporary folder or the process could not be created.
    """
    level = isolation()
    with tempfile.TemporaryDirectory(prefix="parley-python-") as folder, tempfile.TemporaryFile() as out:
        script = Path(folder) / "main.py"
        script.write_text(code, encoding="utf-8")
        user = _user()
        prefix, start_as = _prefix(level, folder, user)
        if user is not None:
            os.chown(folder, user, user)
            os.chown(script, user, user)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": folder, "TMPDIR": folder, "LANG": "C.UTF-8"}
        process = subprocess.Popen(
            [*prefix, PYTHON, "-I", "-B", str(script)],
            cwd=folder,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=functools.partial(_limits, time_limit, memory_mb, _process_limit(user)),
            user=start_as,
            group=start_as,
            extra_groups=None if start_as is None else [],
        )
        timed_out = False
        try:
            process.wait(timeout=time_limit)
        except subprocess.TimeoutExpired:
            timed_out = True
        _kill_group(process.pid)
        process.wait()
        written = out.seek(0, os.SEEK_END)
        out.seek(0)
        data = out.read(output_cap + 1)
    truncated = len(data) > output_cap
    text = data[:output_cap].decode("utf-8", errors="replace")
    code_ = process.returncode
    why = _why(code_, timed_out, text, time_limit, memory_mb, written >= FSIZE_BYTES)
    return RunResult(text, code_, timed_out, truncated, level, why)


def _kill_group(pid: int) -> None:
    """SIGKILL the process group ``pid`` leads (the sandbox and whatever it started)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _why(code: int, timed_out: bool, output: str, time_limit: float, memory_mb: int, full: bool) -> str | None:
    """One line saying why a run failed, or None when it exited 0."""
    if timed_out or code == -signal.SIGXCPU:
        return f"Stopped: the code ran longer than the {time_limit:g} s time limit."
    if code == -signal.SIGXFSZ or (code != 0 and full):
        return f"Stopped: the code wrote more than {FSIZE_BYTES:,} bytes (output or a file)."
    if "MemoryError" in output or code == -signal.SIGKILL:
        return f"Stopped: the code needed more than the {memory_mb} MB memory limit."
    if code != 0:
        last = output.strip().splitlines()[-1][:200] if output.strip() else ""
        return f"The code failed (exit code {code}){': ' + last if last else ''}."
    return None
