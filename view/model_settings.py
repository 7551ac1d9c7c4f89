"""The "Model settings" expander of the chat pages' sidebar: provider, model, key, temperature, reply
length and system prompt, remembered across reloads.

The choices live in ``st.session_state`` for the tab, start from the user's preferences in the store
(``BaseConversationStore.preferences``: provider, each provider's model, base URL, temperature,
reply length, system prompt, tools), else from settings.py, and are saved there again whenever they
change. A key typed here stays in the tab: it is never saved, logged or shown.

Each provider keeps its own model: switching provider shows that provider's model (its default the
first time, ``utils.providers.default_model``), never the previous provider's.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import streamlit as st

from model.store import StoreError
from settings import PROVIDER_LABELS, Settings
from utils.local_models import GGUFInfo, ModelFileError, bundled_info, find_models, read_gguf
from utils.local_server import LocalServerError
from utils.model_list import models_of
from utils.provider_errors import mask_key
from utils.providers import (
    LLMConfig,
    LocalEndpoint,
    ModelChoice,
    config_problem,
    default_model,
    provider_key,
    provider_name,
    resolve_config,
)
from view.common import (
    local_model_name,
    local_server_or_stop,
    open_store_or_none,
    picked_model_server,
    starting_notice,
)

#: System prompt presets offered in the sidebar (label → prompt).
SYSTEM_PROMPT_PRESETS: dict[str, str] = {
    "Helpful assistant": "You are Parley, a helpful assistant.",
    "Concise": "You are a concise assistant. Answer in as few words as possible, without preamble.",
    "Teacher": "You are a patient teacher. Explain step by step, with a short example.",
    "No system prompt": "",
}
CUSTOM = "Custom"
CHOICE = "model_choice"  # plain dict in session_state; survives page switches, unlike widget state
SAVED = "model_choice_saved"  # the preferences as last read or written
SESSION_KEYS = "session_api_keys"  # provider → key typed in this tab
LOCAL_PICK = "set_local_model"
LOCAL_PICK_ERROR = "set_local_model_error"
#: The "Local model" option of the bundled model (a selectbox shows None as "Choose an option").
BUNDLED = "bundled"
BUNDLED_LABEL = "SmolLM2-135M-Instruct (bundled)"
#: The settings kept as preferences (never an API key).
PREFERENCE_KEYS = (
    "provider", "models", "base_url", "temperature", "max_tokens", "preset", "system_prompt", "tools", "web_search",
)  # fmt: skip


def _defaults(settings: Settings) -> dict[str, Any]:
    preset = next((k for k, v in SYSTEM_PROMPT_PRESETS.items() if v == settings.llm_system_prompt), CUSTOM)
    return {
        "provider": settings.provider,
        "models": {},
        "base_url": settings.llm_base_url or "",
        "temperature": settings.llm_temperature,
        "max_tokens": settings.llm_max_tokens,
        "preset": preset,
        "system_prompt": settings.llm_system_prompt,
        "tools": [],
        "web_search": False,
    }


def _valid(saved: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """The saved preferences that still make sense (a known provider and preset, numbers in range)."""
    kept = {k: v for k, v in saved.items() if k in PREFERENCE_KEYS and isinstance(v, type(defaults[k]))}
    if kept.get("provider") not in PROVIDER_LABELS:
        kept.pop("provider", None)
    if kept.get("preset") not in [*SYSTEM_PROMPT_PRESETS, CUSTOM]:
        kept.pop("preset", None)
    if not 0.0 <= float(kept.get("temperature", 0.0)) <= 2.0:
        kept.pop("temperature", None)
    if int(kept.get("max_tokens", 16)) < 1:
        kept.pop("max_tokens", None)
    return kept


def choice_of(settings: Settings) -> dict[str, Any]:
    """This tab's model choice: the saved preferences over settings.py, read the first time."""
    if CHOICE not in st.session_state:
        defaults = _defaults(settings)
        store = open_store_or_none(settings)
        try:
            saved = store.preferences() if store is not None else {}
        except StoreError:
            saved = {}
        choice = defaults | _valid(saved, defaults)
        st.session_state[CHOICE] = choice
        st.session_state[SAVED] = {k: choice[k] for k in PREFERENCE_KEYS}
    choice: dict[str, Any] = st.session_state[CHOICE]
    return choice


def remember(settings: Settings, **changes: Any) -> None:
    """Set ``changes`` in this tab's choice and save the preferences if they changed (a failed save
    is left unsaid: the choice still holds in this tab)."""
    choice = choice_of(settings)
    choice.update(changes)
    current = {k: choice[k] for k in PREFERENCE_KEYS}
    if current == st.session_state.get(SAVED):
        return
    store = open_store_or_none(settings)
    if store is None:
        return
    try:
        store.save_preferences(current)
    except StoreError:
        return
    st.session_state[SAVED] = current


def active_config(settings: Settings) -> LLMConfig:
    """The LLMConfig this tab uses now: settings.py, overridden by the sidebar choices.

    Starts the local server (with a spinner) when the provider is local; stops the page with
    ``st.error`` if it cannot start.
    """
    choice = choice_of(settings)
    provider = choice["provider"]
    local = local_endpoint(settings) if provider == "local" else None
    picked = ModelChoice(
        provider=provider,
        model=choice["models"].get(provider) or None,
        base_url=choice["base_url"] or None,
        api_key=st.session_state.get(SESSION_KEYS, {}).get(provider),
        temperature=choice["temperature"],
        max_tokens=choice["max_tokens"],
        system_prompt=choice["system_prompt"],
    )
    return resolve_config(settings, picked, local)


def local_endpoint(settings: Settings) -> LocalEndpoint:
    """The local model server in use, as a provider (started with a spinner the first time)."""
    server = local_server_or_stop(settings)
    return LocalEndpoint(server.base_url, server.context_window, local_model_name())


def model_settings(settings: Settings, instructions: str | None = None) -> LLMConfig:
    """Draw the "Model settings" section of the sidebar and return the resulting LLMConfig.

    Args:
        settings: the loaded settings.
        instructions: the chosen assistant's instructions, shown read-only in place of the system
            prompt (they replace it); None shows the system prompt's own fields.
    """
    choice = choice_of(settings)
    with st.expander("Model settings", expanded=False):
        providers = list(PROVIDER_LABELS)
        provider = st.selectbox(
            "Provider",
            providers,
            index=providers.index(choice["provider"]),
            format_func=provider_name,
            key="set_provider",
        )
        choice["provider"] = provider
        if provider == "openai_like":
            choice["base_url"] = st.text_input(
                "Base URL", value=choice["base_url"], placeholder="http://127.0.0.1:11434/v1", key="set_base_url"
            ).strip()
        if provider in ("groq", "openai"):
            _key_field(settings, provider)
        if provider == "local":
            _local_model_field(settings)
        config = active_config(settings)
        if provider != "local":
            _model_field(settings, choice, config)
        _sampling_fields(choice, instructions)
        st.caption("Changes apply from your next message and are remembered.")
    remember(settings)
    config = active_config(settings)
    st.markdown(f"**{provider_name(config.provider)}** · `{config.model}`")
    problem = config_problem(config)
    if problem:
        st.error(problem)
    return config


def _sampling_fields(choice: dict[str, Any], instructions: str | None = None) -> None:
    """Temperature, reply length and the system prompt (a preset or custom text; read-only, the
    assistant's ``instructions``, while an assistant is chosen)."""
    choice["temperature"] = st.slider("Temperature", 0.0, 2.0, float(choice["temperature"]), 0.1, key="set_temperature")
    choice["max_tokens"] = int(
        st.number_input("Max tokens per reply", 1, None, int(choice["max_tokens"]), 16, key="set_max_tokens")
    )
    if instructions is not None:
        st.text_area(
            "System prompt (the assistant's instructions)",
            value=instructions,
            disabled=True,
            key=f"set_assistant_prompt_{hash(instructions)}",
            help="While an assistant is chosen, its instructions replace the system prompt.",
        )
        return
    presets = [*SYSTEM_PROMPT_PRESETS, CUSTOM]
    choice["preset"] = st.selectbox("System prompt", presets, index=presets.index(choice["preset"]), key="set_preset")
    if choice["preset"] == CUSTOM:
        choice["system_prompt"] = st.text_area(
            "Custom system prompt", value=choice["system_prompt"], key="set_system_prompt"
        )
    else:
        choice["system_prompt"] = SYSTEM_PROMPT_PRESETS[choice["preset"]]


def _key_field(settings: Settings, provider: str) -> None:
    """The API key: from the environment (shown masked), or a password field kept in this tab."""
    env_key = provider_key(settings, provider)
    keys = st.session_state.setdefault(SESSION_KEYS, {})
    if env_key is not None and provider not in keys:
        st.caption(f"API key from the environment: `{mask_key(env_key)}`")
        return
    typed = st.text_input(
        f"{PROVIDER_LABELS[provider]} API key",
        type="password",
        key=f"set_key_{provider}",
        help="Kept in this browser tab only; never saved.",
    )
    if typed.strip():
        keys[provider] = typed.strip()
    if provider in keys:
        st.caption(f"Using the key you entered: `{mask_key(keys[provider])}`")


def _model_field(settings: Settings, choice: dict[str, Any], config: LLMConfig) -> None:
    """The provider's model: a list from its /models when it answers, else free text; each provider
    keeps its own (its default until one is chosen)."""
    provider = config.provider
    chosen = choice["models"].get(provider)
    current = chosen or default_model(settings, provider)
    models = _models_of(config)
    if models and not chosen and current not in models:
        current = models[0]  # the server's own first model, rather than a default it does not have
    if models:
        options = models if current in models else [current, *models]
        picked = st.selectbox("Model", options, index=options.index(current), key=f"set_model_{provider}")
    else:
        picked = st.text_input("Model", value=current, key=f"set_model_text_{provider}").strip()
    if picked and picked != (chosen or default_model(settings, provider)):  # the user's own choice, kept
        choice["models"] = {**choice["models"], provider: picked}


def _local_model_field(settings: Settings) -> None:
    """The local model: the bundled one or a GGUF from LOCAL_MODELS_DIR, with its size,
    quantisation and context length. Picking one restarts the local server on it."""
    picked = picked_model_server()
    in_use: Path | str = picked.path if picked.path is not None else BUNDLED
    files = find_models(settings.local_models_dir)
    options: list[Path | str] = [BUNDLED, *files]
    if in_use not in options:
        options.append(in_use)
    st.session_state[LOCAL_PICK] = in_use  # the model in use, also when another tab changed it
    st.selectbox(
        "Local model",
        options,
        format_func=lambda p: BUNDLED_LABEL if p == BUNDLED else Path(p).name,
        key=LOCAL_PICK,
        on_change=_pick_local_model,
        args=(settings,),
        help=f"GGUF files in {settings.local_models_dir} are listed here.",
    )
    problem = st.session_state.pop(LOCAL_PICK_ERROR, None)
    if problem:
        st.error(problem)
    info = bundled_info(settings.local_model_path) if picked.path is None else _gguf_or_none(picked.path)
    if info is not None:
        st.caption(info.label)
    if not files:
        st.caption(f"Put .gguf files in `{settings.local_models_dir}` to choose a bigger local model.")


def _gguf_or_none(path: Path) -> GGUFInfo | None:
    try:
        return read_gguf(path)
    except ModelFileError:
        return None


def _pick_local_model(settings: Settings) -> None:
    """on_change of "Local model": start the server on the picked file (with a spinner); on a
    bad file or a failed start, keep the previous model and say why."""
    picked = picked_model_server()
    path = st.session_state[LOCAL_PICK]
    if path == BUNDLED:
        picked.stop()
        return
    try:
        usual = f"Starting the local model {Path(path).name}… large models take a while to load."
        with st.spinner(starting_notice(usual, Path(path), settings.local_llm_threads)):
            picked.serve(
                Path(path),
                settings.local_context_window,
                settings.local_server_start_timeout,
                settings.local_llm_threads,
            )
    except (ModelFileError, LocalServerError) as exc:
        st.session_state[LOCAL_PICK] = picked.path if picked.path is not None else BUNDLED
        st.session_state[LOCAL_PICK_ERROR] = f"{exc} The previous model keeps answering."


def _models_of(config: LLMConfig) -> list[str]:
    """Model ids from the provider's /models, asked once per provider, URL and key in this tab."""
    if config_problem(config):
        return []
    fingerprint = hashlib.sha256(f"{config.provider}|{config.base_url}|{config.api_key}".encode()).hexdigest()
    cache = st.session_state.setdefault("_models_cache", {})
    if fingerprint not in cache:
        cache[fingerprint] = models_of(config)  # nothing listed: the user types the model name instead
    return list(cache[fingerprint])
