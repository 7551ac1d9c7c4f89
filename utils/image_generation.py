"""Image generation through an OpenAI-compatible images endpoint (the "Create image" tool).

Configured by IMAGE_MODEL (e.g. ``gpt-image-1`` or ``dall-e-3``), IMAGE_BASE_URL (another server
speaking OpenAI's images API; OpenAI's by default) and IMAGE_API_KEY (else OPENAI_API_KEY); off when
IMAGE_MODEL is not set. Called through the openai SDK's ``images.generate``, asking for the image's
bytes (``b64_json``), so Parley never fetches an address a server names. ``gpt-image-*`` models
always answer with bytes and refuse the ``response_format`` field, so it is sent to the others only.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from settings import Settings

#: Longest prompt sent, in characters (dall-e-3 takes 4,000).
MAX_PROMPT_CHARS = 4000


class ImageGenerationError(RuntimeError):
    """No image came back; ``str(error)`` says why, for the agent and the user."""


@dataclass(frozen=True, slots=True)
class ImageEndpoint:
    """An OpenAI-compatible images endpoint.

    Attributes:
        model: the image model (IMAGE_MODEL).
        base_url: its API root (IMAGE_BASE_URL), or None for OpenAI's.
        api_key: its key (IMAGE_API_KEY, else OPENAI_API_KEY); kept out of ``repr``.
        timeout: seconds one request may take.
    """

    model: str
    base_url: str | None = None
    api_key: str | None = None
    timeout: float = 120.0

    def __repr__(self) -> str:
        return f"ImageEndpoint(model={self.model!r}, base_url={self.base_url!r})"


def image_endpoint(settings: Settings) -> ImageEndpoint | None:
    """The endpoint the settings configure, or None when IMAGE_MODEL is not set (the tool is off)."""
    if not settings.image_model:
        return None
    key = settings.image_api_key or settings.openai_api_key
    return ImageEndpoint(settings.image_model, settings.image_base_url, key.get_secret_value() if key else None)


def generate_image(endpoint: ImageEndpoint, prompt: str) -> bytes:
    """One image for ``prompt``, 1024 × 1024 (a size every OpenAI image model takes), as the server's
    bytes (PNG for OpenAI's models; check them before use).

    Raises:
        ImageGenerationError: an empty prompt, the server refused or failed, or it sent no image.
    """
    import openai

    prompt = prompt.strip()[:MAX_PROMPT_CHARS]
    if not prompt:
        raise ImageGenerationError("No description of the image was given.")
    client = openai.OpenAI(
        api_key=endpoint.api_key or "not-needed",
        base_url=endpoint.base_url,
        timeout=endpoint.timeout,
        max_retries=1,
    )
    try:
        result = client.images.generate(
            model=endpoint.model,
            prompt=prompt,
            size="1024x1024",
            n=1,
            response_format=openai.omit if endpoint.model.startswith("gpt-image") else "b64_json",
        )
    except openai.APIStatusError as exc:
        raise ImageGenerationError(f"The image service refused (HTTP {exc.status_code}).") from exc
    except openai.APIError as exc:
        raise ImageGenerationError(f"The image service could not be reached ({type(exc).__name__}).") from exc
    encoded = result.data[0].b64_json if result.data else None
    if not encoded:
        raise ImageGenerationError("The image service sent no image.")
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImageGenerationError("The image service sent something that is not an image.") from exc
