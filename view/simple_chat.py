"""The Simple Chat page: stream replies; the tab's messages are the history; nothing is saved."""

import streamlit as st

from controller.chat import Chat
from controller.engines import PlainEngine
from view.chat import STOP_WAIT_SECONDS, chat_area, tab_chat, take_action
from view.common import settings_or_stop, setup_page
from view.model_settings import model_settings

SESSION_KEY = "simple_chat"


def render(engine: type[PlainEngine]) -> None:
    """Draw the page; ``engine.from_defaults(config)`` answers each turn."""
    setup_page("Simple Chat")
    settings = settings_or_stop()
    with st.sidebar:
        config = model_settings(settings)
        st.caption("Nothing on this page is saved.")
    chat = tab_chat(SESSION_KEY, engine.from_defaults(config))
    take_action(chat, settings, "simple")
    with st.sidebar:
        st.button("Clear chat", icon="🧹", disabled=not chat.messages, on_click=_clear, args=(chat,))
    st.title("Simple Chat")
    chat_area(chat, config, settings, page="simple", edit=False, feedback=False)


def _clear(chat: Chat) -> None:
    """on_click of "Clear chat": stop a reply being written, then start over."""
    if chat.job is not None:
        chat.job.stop(STOP_WAIT_SECONDS)
    if not chat.replying:
        chat.new()
