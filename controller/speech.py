"""Voice in and out for the chat: which service turns speech into text and text into speech for a
model in use, and a reply read out.

Offline first (``utils.speech``): with no key, Whisper tiny.en listens and Piper speaks. A chat on
Groq with its key transcribes with Groq's Whisper; a chat on OpenAI with its key transcribes and
speaks with OpenAI's models. Other providers (an OpenAI-compatible server) stay offline: their
servers rarely offer speech.
"""

from __future__ import annotations

import functools
import hashlib

from utils.providers import LLMConfig
from utils.speech import SpeechProvider, speech_text, synthesize

#: Read-out replies kept in memory (by their text's SHA-256), so "Read aloud" twice speaks at once.
SPOKEN_CACHE = 32


#: The end of Groq's OpenAI-compatible API root, which its own SDK adds to each path itself.
GROQ_OPENAI_PATH = "/openai/v1"


def transcriber_for(config: LLMConfig) -> SpeechProvider:
    """Who transcribes for a chat on ``config``: Groq or OpenAI when that is the provider and its key
    is set (at ``config.base_url`` when LLM_BASE_URL overrides their API root), else offline
    Whisper (``SpeechProvider()``)."""
    if config.provider in ("groq", "openai") and config.api_key:
        return SpeechProvider(config.provider, config.api_key, _sdk_root(config))
    return SpeechProvider()


def voice_for(config: LLMConfig) -> SpeechProvider:
    """Who reads replies out for a chat on ``config``: OpenAI with its key (at ``config.base_url``
    when set), else Piper offline."""
    if config.provider == "openai" and config.api_key:
        return SpeechProvider("openai", config.api_key, _sdk_root(config))
    return SpeechProvider()


def _sdk_root(config: LLMConfig) -> str | None:
    """The API root to give the provider's SDK: ``config.base_url`` (Groq's without its
    ``/openai/v1``, which the Groq SDK adds), or None for the SDK's default."""
    root = (config.base_url or "").rstrip("/")
    if config.provider == "groq" and root.endswith(GROQ_OPENAI_PATH):
        root = root[: -len(GROQ_OPENAI_PATH)]
    return root or None


def read_aloud(markdown: str, voice: SpeechProvider | None = None) -> bytes:
    """A reply read out as WAV: ``utils.speech.speech_text`` of ``markdown`` (no Markdown marks, code
    blocks or citation numbers), spoken by ``voice`` (Piper by default); the last ``SPOKEN_CACHE``
    are kept.

    Raises:
        utils.speech.SpeechError: nothing to read, or no voice could speak.
    """
    text = speech_text(markdown)
    return _spoken(hashlib.sha256(text.encode()).hexdigest(), text, voice or SpeechProvider())


@functools.lru_cache(maxsize=SPOKEN_CACHE)
def _spoken(digest: str, text: str, voice: SpeechProvider) -> bytes:
    return synthesize(text, voice)
