"""Shared view helpers: page setup, settings, the local server, the store and the active model."""

from __future__ import annotations

import hashlib
from pathlib import Path

import streamlit as st
from pydantic import ValidationError

from model.message import Message
from model.store_base import Store, StoreError
from model.stores import open_store
from settings import PROVIDER_LABELS, Settings, load_settings
from utils.llm import LLMConfig
from utils.local_server import LocalServer, LocalServerError

#: Longest conversation name shown in full in the sidebar, in characters.
NAME_DISPLAY_LIMIT = 40


def setup_page(title: str, icon: str = "💬") -> None:
    """Set the browser tab's title and icon and the wide layout."""
    st.set_page_config(page_title=f"{title} · Parley", page_icon=icon, layout="wide")


def settings_or_stop() -> Settings:
    """Return the settings, or show what is wrong with them and stop the page."""
    try:
        return load_settings()
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        st.error(
            f"Parley's configuration has a mistake: {problems}. Fix it in the environment or .streamlit/secrets.toml."
        )
        st.stop()


@st.cache_resource(show_spinner=False)
def _local_server(
    port: int | None, model_path: Path | None, context_window: int, start_timeout: float, threads: int | None
) -> LocalServer:
    """One local model server per configuration, shared by every rerun, page and tab."""
    return LocalServer.ensure(port, model_path, context_window, start_timeout, threads)


@st.cache_resource(show_spinner=False)
def _store(location: str) -> Store:
    """The store at ``location``, shared by all tabs (every backend is thread-safe)."""
    return open_store(location)


def conversation_store(settings: Settings) -> Store:
    """The conversation store that CONVERSATIONS_URL (or CONVERSATIONS_FILE) names, opened once.

    A database that cannot be reached is shown with ``st.error`` (its URL, password masked) and
    stops the page: Parley never falls back to another store silently.
    """
    try:
        return _store(settings.conversations_location)
    except StoreError as exc:
        st.error(str(exc))
        st.stop()


def local_server_or_stop(settings: Settings) -> LocalServer:
    """The shared local model server, started with a spinner the first time.

    On a missing model or a server that does not start, shows ``st.error`` with what to do and
    stops the page.
    """
    try:
        with st.spinner("Starting the local model (SmolLM2-135M-Instruct)… this takes a few seconds the first time."):
            return _local_server(
                settings.local_llm_port,
                settings.local_model_path,
                settings.local_context_window,
                settings.local_server_start_timeout,
                settings.local_llm_threads,
            )
    except LocalServerError as exc:
        st.error(str(exc))
        st.stop()


def provider_caption(config: LLMConfig) -> str:
    """One line naming the active provider and model, for the sidebar and Home."""
    return f"**Provider:** {PROVIDER_LABELS.get(config.provider, config.provider)}  \n**Model:** `{config.model}`"


def short_name(name: str) -> str:
    """Return ``name`` cut to NAME_DISPLAY_LIMIT characters with an ellipsis, for labels."""
    return name if len(name) <= NAME_DISPLAY_LIMIT else name[: NAME_DISPLAY_LIMIT - 1] + "…"


def widget_key(prefix: str, name: str) -> str:
    """A widget key that is unique and safe whatever ``name`` holds (SHA-1 of its UTF-8)."""
    return f"{prefix}-{hashlib.sha1(name.encode('utf-8')).hexdigest()}"


def render_messages(messages: list[Message]) -> None:
    """Draw each message as a chat bubble, with its footer (model, incomplete mark, sources)."""
    for message in messages:
        with st.chat_message(message.role.value):
            st.markdown(message.content)
            message_footer(message)


def message_footer(message: Message) -> None:
    """Under a reply: the model that gave it, whether it is incomplete, and its "Sources"."""
    if message.role.value != "assistant":
        return
    if message.incomplete:
        st.caption(f"⚠️ This reply from {message.model or 'the model'} was interrupted and is incomplete.")
    elif message.model:
        st.caption(message.model)
    elif message.knowledge_base:
        st.caption(f"Nothing in “{message.knowledge_base}” passed the similarity threshold; no model was asked.")
    if message.sources:
        with st.expander("Sources"):
            for number, source in enumerate(message.sources, start=1):
                where = f" · {source['where']}" if source.get("where") else ""
                st.markdown(f"**{number}. {source['file_name']}**{where} · similarity {source['score']:.2f}")
                st.text(source["text"][:1500])


def flash(text: str, kind: str = "success") -> None:
    """Queue a message to show on the next rerun (for actions followed by ``st.rerun``)."""
    st.session_state.setdefault("_flash", []).append((kind, text))


def show_flashes() -> None:
    """Show and clear the queued messages."""
    for kind, text in st.session_state.pop("_flash", []):
        getattr(st, kind)(text)
