"""Provider configuration: what is needed to build one LLM (``LLMConfig``), resolved in one place
(``resolve_config``) from the settings, a user's choices and the local model server, for the pages,
the chat server and the workers alike.

Providers: ``local`` (the bundled model's llama-cpp-python server), ``groq``, ``openai`` and
``openai_like`` (any OpenAI-compatible server: vLLM, Ollama, LM Studio, llama.cpp...).
"""

from __future__ import annotations

from dataclasses import dataclass

from settings import DEFAULT_MODELS, PROVIDER_LABELS, Settings

#: Groq's OpenAI-compatible API root (llama_index.llms.groq.Groq's default).
GROQ_API_BASE = "https://api.groq.com/openai/v1"
#: OpenAI's API root.
OPENAI_API_BASE = "https://api.openai.com/v1"
#: The environment variable that holds each cloud provider's key.
KEY_VARIABLES = {"groq": "GROQ_API_KEY", "openai": "OPENAI_API_KEY"}


@dataclass(frozen=True, slots=True)
class LLMConfig:
    """What is needed to build one LLM.

    Attributes:
        provider: ``local``, ``groq``, ``openai`` or ``openai_like``.
        model: model id sent to the provider.
        base_url: API root (``.../v1``); required for local and openai_like, optional otherwise.
        api_key: the key in plain text; kept out of ``repr``.
        temperature: sampling temperature, 0 to 2.
        max_tokens: most tokens in one reply.
        context_window: context window in tokens, or None for the provider's default.
        timeout: seconds before one HTTP request gives up.
        system_prompt: the system message sent first, or None.
        stop: sequences at which the model stops generating (OpenAI's ``stop``), or empty.
        json_mode: True asks for a JSON object (OpenAI's ``response_format={"type": "json_object"}``).
        tools_base_url: provider ``local`` only: the API root of the server that gives this model
            tool calls (llama-cpp-python's ``chatml-function-calling`` format), asked when tools are
            offered (``utils.llm.LocalToolLLM``); None to send tools to ``base_url`` as they are.
        vision: True when the model takes images, False when not, None to follow ``VISION_MODELS``
            (``sees_images``).
    """

    provider: str
    model: str
    base_url: str | None = None
    api_key: str | None = None
    temperature: float = 0.7
    max_tokens: int = 512
    context_window: int | None = None
    timeout: float = 60.0
    system_prompt: str | None = None
    stop: tuple[str, ...] = ()
    json_mode: bool = False
    tools_base_url: str | None = None
    vision: bool | None = None

    def __repr__(self) -> str:
        return f"LLMConfig(provider={self.provider!r}, model={self.model!r}, base_url={self.base_url!r})"

    @property
    def label(self) -> str:
        """A short name for the user: ``Groq · llama-3.3-70b-versatile``."""
        return f"{provider_name(self.provider)} · {self.model}"


@dataclass(frozen=True, slots=True)
class ModelChoice:
    """What a user chose over the settings (the sidebar, a request); None keeps the setting.

    Attributes:
        provider: the provider; None keeps LLM_PROVIDER's.
        model: the model id; None gives LLM_MODEL when the provider is the configured one, else
            the provider's default (``settings.DEFAULT_MODELS``).
        base_url: the API root of an OpenAI-compatible server; None keeps LLM_BASE_URL.
        api_key: a key typed by the user; None looks it up in the settings (``provider_key``).
        temperature: 0 to 2; None keeps LLM_TEMPERATURE.
        max_tokens: most tokens in one reply; None keeps LLM_MAX_TOKENS.
        system_prompt: "" for none; None keeps LLM_SYSTEM_PROMPT.
    """

    provider: str | None = None
    model: str | None = None
    base_url: str | None = None
    api_key: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    system_prompt: str | None = None


@dataclass(frozen=True, slots=True)
class LocalEndpoint:
    """A running local model server, as a provider: its API root, ``n_ctx`` and model id.

    Attributes:
        base_url: ``http://127.0.0.1:<port>/v1``.
        context_window: its ``n_ctx``, in tokens.
        model: the model id it answers to (``--model_alias``).
    """

    base_url: str
    context_window: int
    model: str


def provider_name(provider: str) -> str:
    """The provider's short name for the user: ``Local``, ``Groq``, ``OpenAI``, ``OpenAI-compatible``."""
    if provider == "openai_like":
        return "OpenAI-compatible"
    return PROVIDER_LABELS.get(provider, provider).split(" (")[0]


def provider_key(settings: Settings, provider: str) -> str | None:
    """The API key the settings hold for ``provider`` (GROQ_API_KEY or OPENAI_API_KEY), or None."""
    secret = {"groq": settings.groq_api_key, "openai": settings.openai_api_key}.get(provider)
    return secret.get_secret_value() if secret is not None else None


def default_model(settings: Settings, provider: str) -> str:
    """The model ``provider`` starts with: LLM_MODEL when it is the configured provider, else its
    default from ``settings.DEFAULT_MODELS``."""
    if provider == settings.provider and settings.llm_model:
        return settings.llm_model
    return DEFAULT_MODELS.get(provider, "default")


def resolve_config(
    settings: Settings, choice: ModelChoice | None = None, local: LocalEndpoint | None = None
) -> LLMConfig:
    """The LLMConfig for ``settings`` with ``choice`` applied, on the ``local`` server for provider local.

    A missing key or base URL is not an error here: ``config_problem`` tells, and
    ``utils.llm.build_llm`` refuses, so that a page can still show the conversation and say how to fix it.

    Args:
        settings: the loaded settings.
        choice: the user's choices over the settings, or None.
        local: the local model server in use (provider ``local``), or None when none runs.
    """
    choice = choice or ModelChoice()
    provider = choice.provider or settings.provider
    system_prompt = settings.llm_system_prompt if choice.system_prompt is None else choice.system_prompt
    if provider == "local":
        model = local.model if local is not None else DEFAULT_MODELS["local"]
        base_url, window = (local.base_url, local.context_window) if local is not None else (None, None)
    else:
        model = choice.model or default_model(settings, provider)
        base_url, window = choice.base_url or settings.llm_base_url, settings.llm_context_window
    return LLMConfig(
        provider=provider,
        model=model,
        base_url=base_url,
        api_key=choice.api_key or provider_key(settings, provider),
        temperature=settings.llm_temperature if choice.temperature is None else choice.temperature,
        max_tokens=choice.max_tokens or settings.llm_max_tokens,
        context_window=window,
        timeout=settings.llm_timeout,
        system_prompt=system_prompt or None,
        vision=settings.llm_vision if provider != "local" else False,
    )


#: The models that take images, by provider: exact ids, or prefixes ending in "*". Groq lists its
#: vision models by id; OpenAI's gpt-4o, gpt-4.1, gpt-5, o3 and o4 families all take images. An
#: OpenAI-compatible server's model is not known here: LLM_VISION=1 says it takes images.
VISION_MODELS: dict[str, tuple[str, ...]] = {
    "groq": ("meta-llama/llama-4-scout-17b-16e-instruct", "meta-llama/llama-4-maverick-17b-128e-instruct"),
    "openai": ("gpt-4o*", "gpt-4.1*", "gpt-5*", "chatgpt-4o*", "o3*", "o4-mini*"),
    "openai_like": (),
    "local": (),
}


def sees_images(config: LLMConfig) -> bool:
    """True when ``config``'s model takes images (OpenAI's ``image_url`` parts): ``config.vision``
    when set (LLM_VISION), else whether ``VISION_MODELS`` lists the model for its provider."""
    if config.vision is not None:
        return config.vision
    for pattern in VISION_MODELS.get(config.provider, ()):
        if config.model == pattern or (pattern.endswith("*") and config.model.startswith(pattern[:-1])):
            return True
    return False


def config_problem(config: LLMConfig) -> str | None:
    """Why ``config`` cannot be used (a missing key or base URL, an unknown provider), for the user, or None."""
    if config.provider in KEY_VARIABLES and not config.api_key:
        return (
            f"No API key for {PROVIDER_LABELS[config.provider]}. Enter one in the sidebar (kept in this "
            f"tab only), or set {KEY_VARIABLES[config.provider]} in your environment or in .streamlit/secrets.toml "
            "and restart."
        )
    if config.provider == "openai_like" and not config.base_url:
        return (
            "No base URL for the OpenAI-compatible server. Enter it in the sidebar, or set LLM_BASE_URL, "
            "e.g. http://127.0.0.1:11434/v1 for Ollama."
        )
    if config.provider not in PROVIDER_LABELS:
        return f"Unknown provider {config.provider!r}: use local, groq, openai or openai_like."
    return None


def default_base_url(provider: str) -> str | None:
    """The API root of a cloud provider (groq, openai) when no base URL is configured, else None."""
    return {"groq": GROQ_API_BASE, "openai": OPENAI_API_BASE}.get(provider)
