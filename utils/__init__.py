"""Adapters to the outside world: the LLM providers, the local model server, embeddings, files.

``USE_TORCH=0`` for the app process: llama-index's OpenAILike imports ``transformers``, which
would import torch (several seconds and ~300 MB) although the chat never uses it. The knowledge
base's embedding model, which does need torch, runs in its own process (utils.embeddings).
"""

import os

os.environ.setdefault("USE_TORCH", "0")

# llama-index's SentenceSplitter needs NLTK's punkt and stopwords. They ship inside llama-index-core
# (``llama_index/core/_static/nltk_cache``), but it looks for them under the user's cache folder and
# downloads them there on first use, which fails offline. Pointing NLTK_DATA at the package's copy
# uses the shipped data (found without importing llama-index here).
_LLAMA_CORE = next(
    (
        os.path.join(folder, "llama_index", "core")
        for folder in __import__("sys").path
        if os.path.isdir(os.path.join(folder, "llama_index", "core", "_static", "nltk_cache"))
    ),
    None,
)
if _LLAMA_CORE is not None:
    os.environ.setdefault("NLTK_DATA", _LLAMA_CORE)
