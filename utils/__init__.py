"""Adapters to the outside world: the LLM providers, the local model server, embeddings, files.

``USE_TORCH=0`` for the app process: llama-index's OpenAILike imports ``transformers``, which
would import torch (several seconds and ~300 MB) although the chat never uses it. The knowledge
base's embedding model, which does need torch, runs in its own process (utils.embeddings).
"""

import os

os.environ.setdefault("USE_TORCH", "0")
