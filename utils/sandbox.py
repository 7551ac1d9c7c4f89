"""Run untrusted Python code (the agent's "Run Python" tool) in a separate, isolated, limited process.

Isolation comes from Debian's bubblewrap (``bwrap``), and nothing else: where it cannot run, the
tool is off and the page says why (``isolation()``, ``ISOLATION_NOTES``); code never runs less
isolated than this. Each run gets:

- its own user, PID, mount, network, IPC, UTS and cgroup namespaces (``--unshare-all``): no
  network, not even 127.0.0.1 or a Unix socket of this machine; every process the code starts
  (``setsid`` and double-forked ones too) dies when the run ends, with its PID namespace;
- an identity that is never Parley's: as root, a new unprivileged uid from ``RUN_AS_UIDS`` each
  run; as a normal user, that user's uid mapped into a user namespace in which nothing of the
  user's is reachable;
- an allow-listed, read-only file system: the system's ``/usr`` (with the ``/bin``, ``/lib`` and
  ``/lib64`` links, Python included) and ``/etc/ld.so.cache``; nothing else of this machine is
  there: not the app's folder, its data, HOME, or the temporary and runtime folders;
- private scratch space: ``/work`` (its working folder), ``/tmp`` and ``/dev/shm``, each a fresh
  tmpfs of at most ``SCRATCH_BYTES``, gone when the run ends;
- the images it saves in ``/work`` (``IMAGE_SUFFIXES``: charts drawn with Debian's matplotlib, which
  the system's Python has; when the code saved none, its matplotlib figures still open, as after
  ``plt.show()``, are saved as ``figure_<n>.png``, the way a notebook shows them), at most
  ``MAX_IMAGES`` of at most ``MAX_IMAGE_BYTES`` each, handed back
  through a pipe by a few lines run after the code (``COLLECT``) and returned as ``RunResult.files``;
  whatever comes through the pipe is untrusted (the code could write to it) and only read up to
  those bounds;
- limits set with ``setrlimit`` before it starts: wall clock and CPU (``time_limit``), address space
  (``memory_mb``), processes (``MAX_PROCESSES``), file size and output (``FSIZE_BYTES``; the first
  ``output_cap`` bytes are kept and the rest is cut with a note).
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
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

#: Default wall-clock and CPU time limit, in seconds.
TIME_LIMIT_SECONDS = 10.0
#: Default address-space limit, in MB (2**20 bytes). Debian's OpenBLAS (under numpy, under
#: matplotlib) maps a work buffer at its first use and waits for ever when that fails at 256 MB.
MEMORY_LIMIT_MB = 512
#: Default bytes of output kept (stdout and stderr together).
OUTPUT_CAP_BYTES = 20_000
#: Largest file (the output included) the code may write, in bytes; past it the process gets SIGXFSZ.
FSIZE_BYTES = 1_000_000
#: Size of each private scratch folder (``/work``, ``/tmp``, ``/dev/shm``), in bytes.
SCRATCH_BYTES = 64 * 2**20
#: Most processes (and threads) the code may have at once.
MAX_PROCESSES = 16
#: The interpreter that runs the code: the system's Python, under ``/usr`` (the only tree bound in).
PYTHON = "/usr/bin/python3"
#: Unprivileged uids (and gids) the code runs as when Parley runs as root: one picked at random
#: from this range per run (no passwd entry is needed).
RUN_AS_UIDS = range(1_000_000, 2_000_000)
#: The only files of this machine the code sees, read-only (missing ones are skipped): the
#: alternatives are links to shared libraries (numpy, which matplotlib needs, finds BLAS through them);
#: Debian keeps matplotlib's settings file and fontconfig's in /etc.
SYSTEM_FILES = ("/etc/ld.so.cache", "/etc/localtime", "/etc/alternatives", "/etc/matplotlibrc", "/etc/fonts")

#: File types handed back from ``/work`` (lower-case suffixes).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".svg")
#: Most images handed back from one run, and the largest, in bytes (a file is also bounded by
#: ``FSIZE_BYTES`` when it is written, so that is the real limit).
MAX_IMAGES, MAX_IMAGE_BYTES = 5, 5 * 2**20
#: Runs ``/work/main.py`` as ``__main__``, then (at exit, after a traceback is printed) writes the
#: newest images in ``/work`` to the pipe whose descriptor is its first argument: per image a line
#: ``<name>\t<size>`` and its bytes.
COLLECT = f"""
import os, sys
_parley_fd = int(sys.argv[1])
def _parley_images():
    try:
        out = os.fdopen(_parley_fd, "wb")
    except OSError:
        return
    found = [e for e in os.scandir("/work") if e.is_file() and e.name.lower().endswith({IMAGE_SUFFIXES!r})]
    pyplot = sys.modules.get("matplotlib.pyplot")
    if not found and pyplot is not None:
        for number in pyplot.get_fignums()[:{MAX_IMAGES}]:
            try:
                pyplot.figure(number).savefig(f"/work/figure_{{number}}.png")
            except Exception:
                pass
        found = [e for e in os.scandir("/work") if e.is_file() and e.name.lower().endswith({IMAGE_SUFFIXES!r})]
    found.sort(key=lambda e: e.stat().st_mtime)
    for entry in found[-{MAX_IMAGES}:]:
        if entry.stat().st_size <= {MAX_IMAGE_BYTES}:
            with open(entry.path, "rb") as image:
                data = image.read()
            out.write(f"{{entry.name}}\\t{{len(data)}}\\n".encode() + data)
    out.close()
sys.argv = ["/work/main.py"]
with open("/work/main.py", encoding="utf-8") as _parley_source:
    _parley_code = compile(_parley_source.read(), "/work/main.py", "exec")
del _parley_source
try:
    exec(_parley_code, {{"__name__": "__main__", "__file__": "/work/main.py", "__builtins__": __builtins__}})
finally:
    _parley_images()
"""

ISOLATION_NOTES = {
    "full": "Python runs isolated (bubblewrap): no network, none of this machine's files but the system's "
    "programs, a private 64 MB scratch folder, and limits on time, memory, processes and output.",
    "none": "Run Python is off: this machine cannot isolate code. It needs bubblewrap and user namespaces "
    "(`sudo apt-get install bubblewrap`; `make run` tries to install it) and the system's Python "
    f"({PYTHON}). Code is never run less isolated than that.",
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
        isolation: ``full`` (the only level code runs at).
        error: one line saying why the run failed (time, memory, output), or None when it exited 0.
        files: the images the code saved in ``/work``, ``(name, bytes)``, oldest first; untrusted
            bytes (check them before use).
    """

    output: str
    exit_code: int
    timed_out: bool
    truncated: bool
    isolation: str
    error: str | None
    files: tuple[tuple[str, bytes], ...] = ()


class SandboxUnavailable(RuntimeError):
    """Code cannot be isolated on this machine; ``str(error)`` says why and how to fix it."""


def _user() -> int | None:
    """The uid to run code as: a random one from ``RUN_AS_UIDS`` when this process is root, else
    None (this user, mapped into a user namespace)."""
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


def _links() -> list[str]:
    """``/bin``, ``/lib``, ``/lib64`` and ``/sbin`` as on this machine: links into ``/usr`` (merged
    /usr, as on Debian 12) are made again inside; real folders are bound read-only."""
    arguments: list[str] = []
    for top in ("/bin", "/lib", "/lib64", "/sbin"):
        if os.path.islink(top):
            arguments += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            arguments += ["--ro-bind", top, top]
    return arguments


def bwrap_command(script: str, files_fd: int = -1) -> list[str]:
    """The bubblewrap command that runs ``script`` (a file of this machine, bound read-only as
    ``/work/main.py``) with the system's Python, isolated as the module docstring says; its images
    go back through file descriptor ``files_fd`` (inherited; -1: nowhere)."""
    size = str(SCRATCH_BYTES)
    files = [arg for path in SYSTEM_FILES if os.path.exists(path) for arg in ("--ro-bind", path, path)]
    return [
        "bwrap",
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
        "--ro-bind",
        "/usr",
        "/usr",
        *_links(),
        *files,
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        *("--size", size, "--tmpfs", "/dev/shm"),
        *("--size", size, "--tmpfs", "/tmp"),
        *("--size", size, "--tmpfs", "/work"),
        *("--ro-bind", script, "/work/main.py"),
        *("--remount-ro", "/dev"),
        *("--remount-ro", "/"),
        *("--chdir", "/work"),
        "--clearenv",
        *("--setenv", "PATH", "/usr/bin:/bin"),
        *("--setenv", "HOME", "/work"),
        *("--setenv", "TMPDIR", "/tmp"),
        *("--setenv", "LANG", "C.UTF-8"),
        *("--setenv", "MPLBACKEND", "Agg"),
        *("--setenv", "OPENBLAS_NUM_THREADS", "1"),
        PYTHON,
        "-I",
        "-B",
        "-c",
        COLLECT,
        str(files_fd),
    ]


@functools.cache
def isolation() -> str:
    """``full`` when code can run isolated here (bubblewrap works with this module's profile, as
    the uid code runs as, and the system's Python is there), else ``none`` (the tool is off).
    Probed once per process by running ``pass`` (at most 10 s)."""
    if not shutil.which("bwrap") or not os.access(PYTHON, os.X_OK):
        return "none"
    try:
        result = _run("pass", 10.0, MEMORY_LIMIT_MB, 100)
    except OSError:
        return "none"
    return "full" if result.exit_code == 0 and not result.output.strip() else "none"


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
    """Run ``code`` as a Python script in a new isolated process and return what it printed.

    Args:
        code: Python source (run as ``/work/main.py``; ``/work`` is its working folder).
        time_limit: seconds before the process tree is killed (also its CPU-time limit).
        memory_mb: address-space limit in MB.
        output_cap: bytes of output kept.

    Returns:
        a RunResult; the code's own failures (exceptions, limits hit) are in it, not raised.

    Raises:
        SandboxUnavailable: code cannot be isolated on this machine (see ``ISOLATION_NOTES``).
        OSError: the temporary file or the process could not be created.
    """
    if isolation() != "full":
        raise SandboxUnavailable(ISOLATION_NOTES["none"])
    return _run(code, time_limit, memory_mb, output_cap)


def _run(code: str, time_limit: float, memory_mb: int, output_cap: int) -> RunResult:
    user = _user()
    images_read, images_write = os.pipe()
    reader = _PipeReader(images_read, MAX_IMAGES * (MAX_IMAGE_BYTES + 300))
    with tempfile.TemporaryDirectory(prefix="parley-python-") as folder, tempfile.TemporaryFile() as out:
        script = Path(folder) / "main.py"
        script.write_text(code, encoding="utf-8")
        # bubblewrap, started as the sandbox's uid, binds the script read-only: it only needs to reach
        # it. Nothing here is handed to that uid, so Parley can always remove the folder afterwards.
        os.chmod(folder, 0o711)
        script.chmod(0o644)
        process = subprocess.Popen(
            bwrap_command(str(script), images_write),
            pass_fds=(images_write,),
            cwd="/",
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={"PATH": "/usr/bin:/bin"},
            start_new_session=True,
            preexec_fn=functools.partial(_limits, time_limit, memory_mb, _process_limit(user)),
            user=user,
            group=user,
            extra_groups=None if user is None else [],
        )
        os.close(images_write)
        timed_out = False
        try:
            process.wait(timeout=time_limit)
        except subprocess.TimeoutExpired:
            timed_out = True
        _kill_group(process.pid)  # bubblewrap dies; its PID namespace, and every process in it, with it
        process.wait()
        written = out.seek(0, os.SEEK_END)
        out.seek(0)
        data = out.read(output_cap + 1)
    truncated = len(data) > output_cap
    text = data[:output_cap].decode("utf-8", errors="replace")
    code_ = process.returncode
    why = _why(code_, timed_out, text, time_limit, memory_mb, written >= FSIZE_BYTES)
    return RunResult(text, code_, timed_out, truncated, "full", why, _images_in(reader.result()))


class _PipeReader(threading.Thread):
    """Reads a pipe to its end in a thread, keeping its first ``cap`` bytes (the rest is read and
    dropped, so a writer never blocks on a full pipe)."""

    def __init__(self, fd: int, cap: int) -> None:
        super().__init__(daemon=True)
        self._fd, self._cap, self._chunks, self._kept = fd, cap, list[bytes](), 0
        self.start()

    def run(self) -> None:
        try:
            while chunk := os.read(self._fd, 65536):
                if self._kept < self._cap:
                    self._chunks.append(chunk[: self._cap - self._kept])
                    self._kept += len(self._chunks[-1])
        finally:
            os.close(self._fd)

    def result(self, timeout: float = 5.0) -> bytes:
        """What was kept, once the pipe ended (or after ``timeout`` seconds)."""
        self.join(timeout)
        return b"".join(self._chunks)


def _images_in(data: bytes) -> tuple[tuple[str, bytes], ...]:
    """The ``(name, bytes)`` images framed in ``data`` as ``COLLECT`` writes them; reading stops at
    the first malformed frame, after ``MAX_IMAGES``, and at any image over ``MAX_IMAGE_BYTES``."""
    found: list[tuple[str, bytes]] = []
    at = 0
    while len(found) < MAX_IMAGES:
        end = data.find(b"\n", at, at + 300)
        if end < 0:
            break
        name, _, size = data[at:end].decode("utf-8", errors="replace").partition("\t")
        if not size.isdigit() or int(size) > MAX_IMAGE_BYTES or end + 1 + int(size) > len(data):
            break
        found.append((os.path.basename(name)[:100] or "image", data[end + 1 : end + 1 + int(size)]))
        at = end + 1 + int(size)
    return tuple(found)


def _kill_group(pid: int) -> None:
    """SIGKILL the process group ``pid`` leads (bubblewrap)."""
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
    if code != 0 and "No space left on device" in output:
        return f"Stopped: the code filled its {SCRATCH_BYTES // 2**20} MB scratch space."
    if code != 0:
        last = output.strip().splitlines()[-1][:200] if output.strip() else ""
        return f"The code failed (exit code {code}){': ' + last if last else ''}."
    return None
