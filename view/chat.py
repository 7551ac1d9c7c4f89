"""The chat parts both chat pages share: the model settings in the sidebar and the chat area
(messages, streaming, errors with Retry and local fallback, and the context budget line).

Model settings live in ``st.session_state`` (this tab only) and start from settings.py. A key
typed here stays in the session: it is never written to conversations.json, logs or the page.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import streamlit as st

from controller.chat import Chat
from controller.engines import ChatEngine
from controller.errors import ChatError
from controller.turn import Turn
from model.store import BaseConversationStore
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
    provider_key,
    provider_name,
    resolve_config,
)
from view.common import local_model_name, local_server_or_stop, picked_model_server
from view.markdown import no_remote_images
from view.messages import action_key, attachment_lines, message_footer, render_messages
from view.tools import live_tool_calls

#: System prompt presets offered in the sidebar (label → prompt).
SYSTEM_PROMPT_PRESETS: dict[str, str] = {
    "Helpful assistant": "You are Parley, a helpful assistant.",
    "Concise": "You are a concise assistant. Answer in as few words as possible, without preamble.",
    "Teacher": "You are a patient teacher. Explain step by step, with a short example.",
    "No system prompt": "",
}
CUSTOM = "Custom"
#: Shortest time between two redraws of a streaming reply, in seconds (see ``coalesce``);
#: STREAM_REDRAW_INTERVAL sets it for the app.
STREAM_REDRAW_SECONDS = 0.2
CHOICE = "model_choice"  # plain dict in session_state; survives page switches, unlike widget state
SESSION_KEYS = "session_api_keys"  # provider → key typed in this tab
LOCAL_PICK = "set_local_model"
LOCAL_PICK_ERROR = "set_local_model_error"


def _choice(settings: Settings) -> dict:
    """This tab's model choice, created from settings.py the first time."""
    if CHOICE not in st.session_state:
        preset = next((k for k, v in SYSTEM_PROMPT_PRESETS.items() if v == settings.llm_system_prompt), CUSTOM)
        st.session_state[CHOICE] = {
            "provider": settings.provider,
            "model": settings.model,
            "base_url": settings.llm_base_url or "",
            "temperature": settings.llm_temperature,
            "max_tokens": settings.llm_max_tokens,
            "preset": preset,
            "system_prompt": settings.llm_system_prompt,
        }
    return st.session_state[CHOICE]


def active_config(settings: Settings) -> LLMConfig:
    """The LLMConfig this tab uses now: settings.py, overridden by the sidebar choices.

    Starts the local server (with a spinner) when the provider is local; stops the page with
    ``st.error`` if it cannot start.
    """
    choice = _choice(settings)
    provider = choice["provider"]
    local = _local_endpoint(settings) if provider == "local" else None
    typed = st.session_state.get(SESSION_KEYS, {}).get(provider)
    picked = ModelChoice(
        provider=provider,
        model=choice["model"] or None,
        base_url=choice["base_url"] or None,
        api_key=typed,
        temperature=choice["temperature"],
        max_tokens=choice["max_tokens"],
        system_prompt=choice["system_prompt"],
    )
    return resolve_config(settings, picked, local)


def _local_endpoint(settings: Settings) -> LocalEndpoint:
    """The local model server in use, as a provider (started with a spinner the first time)."""
    server = local_server_or_stop(settings)
    return LocalEndpoint(server.base_url, server.context_window, local_model_name())


def tab_chat(key: str, engine: ChatEngine, store: BaseConversationStore | None = None) -> Chat:
    """This tab's Chat for a page (made the first time, saved to ``store`` with automatic titles),
    answering with ``engine`` from now on."""
    chat: Chat | None = st.session_state.get(key)
    if chat is None:
        chat = st.session_state[key] = Chat(engine, store, auto_title=store is not None)
    chat.use(engine)
    return chat


def local_config(settings: Settings, like: LLMConfig) -> LLMConfig:
    """The local model's config with ``like``'s limits and system prompt (for the fallback)."""
    local = _local_endpoint(settings)
    return replace(
        like,
        provider="local",
        model=local.model,
        base_url=local.base_url,
        api_key=None,
        context_window=local.context_window,
    )


def model_settings(settings: Settings) -> LLMConfig:
    """Draw the "Model settings" section of the sidebar and return the resulting LLMConfig."""
    choice = _choice(settings)
    with st.expander("Model settings", expanded=False):
        providers = list(PROVIDER_LABELS)
        choice["provider"] = provider = st.selectbox(
            "Provider",
            providers,
            index=providers.index(choice["provider"]),
            format_func=provider_name,
            key="set_provider",
        )
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
            _model_field(choice, config)
        choice["temperature"] = st.slider(
            "Temperature", 0.0, 2.0, float(choice["temperature"]), 0.1, key="set_temperature"
        )
        choice["max_tokens"] = int(
            st.number_input("Max tokens per reply", 16, 32768, int(choice["max_tokens"]), 16, key="set_max_tokens")
        )
        presets = [*SYSTEM_PROMPT_PRESETS, CUSTOM]
        choice["preset"] = st.selectbox(
            "System prompt", presets, index=presets.index(choice["preset"]), key="set_preset"
        )
        if choice["preset"] == CUSTOM:
            choice["system_prompt"] = st.text_area(
                "Custom system prompt", value=choice["system_prompt"], key="set_system_prompt"
            )
        else:
            choice["system_prompt"] = SYSTEM_PROMPT_PRESETS[choice["preset"]]
        st.caption("Changes apply from your next message, in this tab only.")
    config = active_config(settings)
    st.markdown(f"**{provider_name(config.provider)}** · `{config.model}`")
    problem = config_problem(config)
    if problem:
        st.error(problem)
    return config


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


def _model_field(choice: dict, config: LLMConfig) -> None:
    """The model: a list from the provider's /models when it answers, else free text."""
    models = _models_of(config)
    current = choice["model"] or config.model
    if models:
        options = models if current in models else [current, *models]
        choice["model"] = st.selectbox(
            "Model", options, index=options.index(current), key=f"set_model_{config.provider}"
        )
    else:
        choice["model"] = st.text_input("Model", value=current, key=f"set_model_text_{config.provider}").strip()


BUNDLED_LABEL = "SmolLM2-135M-Instruct (bundled)"


def _local_model_field(settings: Settings) -> None:
    """The local model: the bundled one or a GGUF from LOCAL_MODELS_DIR, with its size,
    quantisation and context length. Picking one restarts the local server on it."""
    picked = picked_model_server()
    files = find_models(settings.local_models_dir)
    options: list[Path | None] = [None, *files]
    if picked.path is not None and picked.path not in options:
        options.append(picked.path)
    st.session_state.setdefault(LOCAL_PICK, picked.path)
    if st.session_state[LOCAL_PICK] not in options:
        st.session_state[LOCAL_PICK] = picked.path
    st.selectbox(
        "Local model",
        options,
        format_func=lambda p: BUNDLED_LABEL if p is None else p.name,
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
    if path is None:
        picked.stop()
        return
    try:
        with st.spinner(f"Starting the local model {path.name}… large models take a while to load."):
            picked.serve(
                path, settings.local_context_window, settings.local_server_start_timeout, settings.local_llm_threads
            )
    except (ModelFileError, LocalServerError) as exc:
        st.session_state[LOCAL_PICK] = picked.path
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


def chat_area(
    chat: Chat,
    config: LLMConfig,
    settings: Settings,
    page: str,
    *,
    edit: bool = True,
    feedback: bool = True,
) -> None:
    """Draw the conversation with its actions, the last failure (with Retry and fallback), the
    chat box (files accepted; its button stops a streaming reply) and the budget line.

    Args:
        chat: this tab's Chat for the page.
        config: the model in use.
        settings: for the local fallback.
        page: a short page id, to keep this page's failure and widgets apart from the other's.
        edit: offer "Edit" under user messages.
        feedback: offer thumbs and comments under answers (saved pages).
    """
    failure_key = f"{page}_failure"
    interval = settings.stream_redraw_interval
    turn = _turn_lock(page)
    # A Stop or any click during a reply starts this run in a new thread while the stopped run is
    # still keeping the partial reply: wait for it (bounded), so the chat below includes it.
    if turn.acquire(timeout=TURN_WAIT_SECONDS):
        turn.release()
    demo_model_notice(config, settings)
    reply = _queued_action(chat, page)
    render_messages(chat, page, edit=edit, feedback=feedback)
    failure = st.session_state.get(failure_key)
    if failure is not None and reply is None:
        notice = st.empty()
        notice.error(no_remote_images(failure["message"]))
        if chat.pending_user_text() is not None:
            actions = st.empty()
            retry_col, local_col = actions.container().columns([1, 3])
            if retry_col.button("Retry", icon="🔁", key=f"{page}_retry"):
                notice.empty(), actions.empty()
                reply = chat.retry()
            elif failure["fallback"] and local_col.button(
                "Answer with the local model instead", key=f"{page}_fallback"
            ):
                notice.empty(), actions.empty()
                reply = chat.retry(local_config(settings, config))
    if reply is not None:
        _stream(chat, reply, failure_key, interval, turn)
    submitted = st.chat_input("Message Parley", accept_file=True, submit_mode="stop", key=f"{page}_input")
    if submitted is not None and (submitted.text.strip() or submitted.files):
        text = submitted.text
        files = [(f.name, f.getvalue()) for f in submitted.files]
        with st.chat_message("user"):
            st.markdown(no_remote_images(text))
            files_line = st.empty()
        try:
            reply = chat.send(text, files)
        except ChatError as exc:  # refused before sending: give the text back
            st.error(no_remote_images(str(exc)))
            if text.strip():
                st.code(exc.refused_text or text, language=None, wrap_lines=True)
            return
        if chat.messages[-1].attachments:
            with files_line.container():
                attachment_lines(chat.messages[-1])
        _stream(chat, reply, failure_key, interval, turn)
    _budget_line(chat)


#: Where the README (shown on the Help page) says how to get better answers than the demo model's.
BETTER_ANSWERS = (
    ("a GGUF model in models/", "Help#a-better-local-model"),
    ("Ollama or another OpenAI-compatible server", "Help#ollama-v-llm-or-any-open-ai-compatible-server"),
    ("a Groq or OpenAI key", "Help#groq-or-open-ai"),
)


def demo_model_notice(config: LLMConfig, settings: Settings) -> None:
    """On the bundled SmolLM2-135M, one line above the chat: what it is, and three ways to better answers."""
    if config.provider != "local" or picked_model_server().path is not None or settings.local_model_path:
        return
    ways = ", ".join(f"[{label}]({target})" for label, target in BETTER_ANSWERS)
    st.info(
        "You are chatting with SmolLM2-135M, a 135-million-parameter demo model that often gets facts "
        f"wrong. For better answers use {ways}.",
        icon="ℹ️",
    )


#: Longest wait, in seconds, for a stopped run to finish keeping its partial reply.
TURN_WAIT_SECONDS = 10.0


def _turn_lock(page: str) -> threading.Lock:
    """This tab's lock for ``page``, held while a reply streams (kept in ``st.session_state``)."""
    return st.session_state.setdefault(f"{page}_turn_lock", threading.Lock())


def _queued_action(chat: Chat, page: str) -> Turn | None:
    """Start the action queued by a message's button (regenerate, or send an edit); None if none.

    A refused action (e.g. an edit too long for the model) is shown with ``st.error`` and its text.
    """
    action = st.session_state.pop(action_key(page), None)
    if action is None:
        return None
    st.session_state.pop(f"{page}_failure", None)
    try:
        if action["kind"] == "regenerate":
            return chat.regenerate()
        return chat.edit(action["index"], action["text"])
    except ChatError as exc:
        st.error(no_remote_images(str(exc)))
        if exc.refused_text:
            st.code(exc.refused_text, language=None, wrap_lines=True)
        return None


def _stream(
    chat: Chat,
    reply: Turn,
    failure_key: str,
    interval: float,
    turn: threading.Lock,
) -> None:
    """Stream ``reply`` into an assistant bubble, redrawn at most every ``interval`` seconds;
    remember a failure so Retry survives reruns.

    Stopping (the chat box's stop button, or any click during the reply) closes the
    stream: the text so far is kept, marked stopped, and the model's HTTP stream is closed.
    """
    st.session_state.pop(failure_key, None)
    with st.chat_message("assistant"):
        body = st.container()
        reply.listen(live_tool_calls(body))  # each tool call as it runs
        deltas = coalesce(reply, interval)
        turn.acquire()
        try:
            with body:
                write_reply(deltas)
                message_footer(chat.messages[-1])
        except ChatError as exc:
            st.session_state[failure_key] = {"message": str(exc), "fallback": exc.can_fall_back}
            st.error(no_remote_images(str(exc)))
        finally:  # also on Stop (Streamlit's StopException) or a rerun: keep the part that arrived
            deltas.close()
            turn.release()
    # Draw the conversation again: the new reply gets its actions (copy, regenerate, rating), a
    # failure its Retry button, and the sidebar lists a conversation saved from its first message.
    st.rerun()


def write_reply(chunks: Iterator[str]) -> str:
    """Draw a streaming reply, chunk by chunk, as Markdown in which no image is drawn
    (``view.markdown.no_remote_images``: the whole text so far is filtered at each redraw, so an
    image split across two chunks is caught too). Returns the whole text."""
    placeholder = st.empty()
    text = ""
    for chunk in chunks:
        text += chunk
        placeholder.markdown(no_remote_images(text))
    return text


def coalesce(deltas: Iterator[str], interval: float = STREAM_REDRAW_SECONDS) -> Iterator[str]:
    """Join text deltas that arrive within ``interval`` seconds into one chunk.

    Each chunk ``write_reply`` gets is a redraw of the whole reply in the browser; at 100+
    tokens/s the browser fell behind the model (half its speed, bench/RESULTS.md). The first
    delta is passed on at once, so the time to first token is unchanged. Closing this generator
    closes ``deltas`` too, so an interrupted reply is kept as incomplete at once.
    """
    pending: list[str] = []
    last = 0.0
    try:
        for delta in deltas:
            pending.append(delta)
            now = time.monotonic()
            if now - last >= interval:
                yield "".join(pending)
                pending.clear()
                last = now
        if pending:
            yield "".join(pending)
    finally:
        close = getattr(deltas, "close", None)
        if close is not None:
            close()


def _budget_line(chat: Chat) -> None:
    """The context budget of the last request, under the chat."""
    budget = chat.budget
    if budget is None:
        return
    left_out = (
        f"; {budget.left_out} older message{'s' if budget.left_out != 1 else ''} left out to fit the context window"
        if budget.left_out
        else "; nothing left out"
    )
    st.caption(
        f"Last request: {budget.sent_messages} messages, about {budget.sent_tokens:,} tokens "
        f"of {budget.token_limit:,} available{left_out}."
    )
