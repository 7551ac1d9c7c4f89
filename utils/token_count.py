"""Counting tokens for usage, when a provider gives none (llama-cpp-python's server reports no usage
in a stream): with the local model's own tokenizer through its server's ``/extras/tokenize/count``,
else with llama-index's tokenizer (tiktoken's cl100k, an approximation for other models)."""

from __future__ import annotations

import httpx
from llama_index.core.utils import get_tokenizer

from utils.providers import LLMConfig


def count_tokens(config: LLMConfig, texts: list[str], timeout: float = 5.0) -> int:
    """The tokens of ``texts`` together, as ``config``'s model counts them where it can say.

    Args:
        config: the provider and model (provider ``local``: its server is asked).
        texts: the texts to count (each counted alone, then summed; a chat template's few tokens
            around each message are not counted).
        timeout: seconds to wait for the local server.

    Returns:
        the number of tokens; llama-index's tokenizer's count when the local server does not answer.
    """
    if config.provider == "local" and config.base_url:
        root = config.base_url.removesuffix("/").removesuffix("/v1")
        try:
            with httpx.Client(base_url=root, timeout=timeout) as client:
                answers = [client.post("/extras/tokenize/count", json={"input": text}) for text in texts if text]
            return int(sum(answer.raise_for_status().json()["count"] for answer in answers))
        except (httpx.HTTPError, KeyError, ValueError):
            pass  # fall back to llama-index's count
    tokenizer = get_tokenizer()
    return sum(len(tokenizer(text)) for text in texts if text)
