"""Model listing: the model ids a provider offers (its ``GET /models``), and whether it answers."""

from __future__ import annotations

import openai

from utils.provider_errors import explain_provider_error
from utils.providers import OPENAI_API_BASE, LLMConfig, default_base_url


def list_models(base_url: str | None, api_key: str | None, timeout: float = 3.0) -> list[str]:
    """The model ids from ``GET {base_url}/models`` (OpenAI protocol), sorted.

    Args:
        base_url: the API root, or None for OpenAI's.
        api_key: the key, or None for servers that need none.
        timeout: seconds to wait.

    Raises:
        openai.OpenAIError: the server did not answer, or refused (e.g. 401).
    """
    client = openai.OpenAI(
        base_url=base_url or OPENAI_API_BASE, api_key=api_key or "not-needed", timeout=timeout, max_retries=0
    )
    return sorted(model.id for model in client.models.list())


def models_of(config: LLMConfig, timeout: float = 3.0) -> list[str]:
    """The model ids ``config``'s provider lists, or [] when it does not answer (a user then types one)."""
    try:
        return list_models(config.base_url or default_base_url(config.provider), config.api_key, timeout)
    except Exception:  # any failure (down, refused, not an OpenAI server): nothing to list
        return []


def check_provider(config: LLMConfig) -> str | None:
    """Ask the provider's ``/models`` endpoint whether it answers; None when it does, else why not."""
    try:
        list_models(config.base_url or default_base_url(config.provider), config.api_key, timeout=5.0)
        return None
    except openai.OpenAIError as exc:
        return explain_provider_error(exc, config)
