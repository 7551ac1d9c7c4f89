"""GGUF models for the local provider: the ones in LOCAL_MODELS_DIR, their metadata, and the one
local server that serves a picked model.

Metadata comes from the GGUF header, read with the ``gguf`` package (llama.cpp's own reader):
``general.file_type`` gives the quantisation (``gguf.LlamaFileType``), ``<architecture>.context_length``
the context length the model was trained for. A file whose tensors end past its size is
truncated (an interrupted download) and is refused before any server is started.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from utils.local_server import LocalServer, LocalServerError, find_local_model


class ModelFileError(ValueError):
    """A GGUF file cannot be used; ``str(error)`` names the file and says why, for the user."""


@dataclass(frozen=True, slots=True)
class GGUFInfo:
    """What the header of a GGUF file says.

    Attributes:
        path: the file.
        size_bytes: its size in bytes.
        name: ``general.name``, or the file name without ``.gguf``.
        architecture: ``general.architecture`` (e.g. ``llama``).
        quantization: the ``gguf.LlamaFileType`` name without ``MOSTLY_`` (e.g. ``Q4_1``), or "unknown".
        context_length: tokens the model was trained for (``<architecture>.context_length``), or None.
    """

    path: Path
    size_bytes: int
    name: str
    architecture: str
    quantization: str
    context_length: int | None

    @property
    def label(self) -> str:
        """One line for the sidebar: size in MB, quantisation and context length."""
        context = f"{self.context_length:,} tokens context" if self.context_length else "context length unknown"
        return f"{self.size_bytes / 1e6:,.0f} MB · {self.quantization} · {context}"


def find_models(folder: Path) -> list[Path]:
    """The ``*.gguf`` files directly in ``folder``, sorted by name ([] when it does not exist)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.gguf") if p.is_file())


def read_gguf(path: Path) -> GGUFInfo:
    """Read the header of the GGUF file ``path`` (cached by path, size and modification time).

    Raises:
        ModelFileError: the file is missing, not a GGUF, damaged, or truncated.
    """
    try:
        stat = path.stat()
    except OSError as exc:
        raise ModelFileError(f"{path.name}: the file cannot be read ({exc.strerror}).") from exc
    return _read_gguf(path, stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=32)
def _read_gguf(path: Path, size: int, mtime_ns: int) -> GGUFInfo:
    from gguf import GGUFReader, LlamaFileType

    with path.open("rb") as handle:
        if handle.read(4) != b"GGUF":
            raise ModelFileError(f"{path.name} is not a GGUF model file (it does not start with 'GGUF').")
    try:
        reader = GGUFReader(path)
    except Exception as exc:  # the reader's own errors: a damaged or cut header
        raise ModelFileError(
            f"{path.name} is truncated or damaged and cannot be loaded ({exc}). "
            "If it was downloaded, the download was probably interrupted; download it again."
        ) from exc
    end = max((t.data_offset + t.n_bytes for t in reader.tensors), default=0)
    if not reader.tensors or end > size:
        raise ModelFileError(
            f"{path.name} is truncated or damaged: its tensors need {end:,} bytes but the file has {size:,}. "
            "If it was downloaded, the download was probably interrupted; download it again."
        )

    def field(key: str) -> object:
        found = reader.fields.get(key)
        return found.contents() if found is not None else None

    architecture = str(field("general.architecture") or "unknown")
    file_type = field("general.file_type")
    quantization = "unknown"
    if isinstance(file_type, int) and file_type in LlamaFileType._value2member_map_:
        quantization = LlamaFileType(file_type).name.removeprefix("MOSTLY_")
    context = field(f"{architecture}.context_length")
    return GGUFInfo(
        path=path,
        size_bytes=size,
        name=str(field("general.name") or path.stem),
        architecture=architecture,
        quantization=quantization,
        context_length=int(context) if isinstance(context, int) else None,
    )


class PickedModelServer:
    """The one local server that serves a model picked from LOCAL_MODELS_DIR (thread-safe).

    The bundled model keeps its own server (``LocalServer.for_settings``); picking a file starts a
    server on it on a free port and then stops the previously picked one, so at most one picked
    model is in memory. If the new one does not start, the previous one keeps serving.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.path: Path | None = None
        self.server: LocalServer | None = None

    def serve(self, path: Path, context_window: int, start_timeout: float, threads: int | None) -> LocalServer:
        """The server for ``path``, started if another (or none) is running.

        Args:
            path: the GGUF file.
            context_window: the most tokens of context to give it (cut to the model's trained length).
            start_timeout: seconds to wait for the model to load.
            threads: generation threads (LOCAL_LLM_THREADS), None for the default.

        Raises:
            ModelFileError: the file is not a usable GGUF (nothing is started).
            LocalServerError: the server did not start (the previous one keeps serving).
        """
        with self._lock:
            if self.server is not None and self.path == path and self.server.answers():
                return self.server
            info = read_gguf(path)
            window = min(context_window, info.context_length or context_window)
            server = LocalServer.ensure(None, path, window, start_timeout, threads, alias=path.stem)
            old, self.server, self.path = self.server, server, path
            if old is not None:
                old.stop()
            return server

    def stop(self) -> None:
        """Stop the picked model's server, if any (going back to the bundled model)."""
        with self._lock:
            if self.server is not None:
                self.server.stop()
            self.server = self.path = None


def bundled_info(configured: Path | None) -> GGUFInfo | None:
    """The header of the bundled model (or LOCAL_MODEL_PATH's), or None when it cannot be read."""
    try:
        return read_gguf(find_local_model(configured))
    except (ModelFileError, LocalServerError):
        return None
