"""The Simple Chat page: stream replies; the session's messages are the history; nothing is saved."""

from collections.abc import Callable

import streamlit as st

from controller.simple_chat import SimpleChat
from utils.llm import LLMConfig
from view.chat import chat_area, model_settings, tab_chat
from view.common import settings_or_stop, setup_page

SESSION_KEY = "simple_chat"


def render(make_chat: Callable[[LLMConfig], SimpleChat]) -> None:
    """Draw the page; ``make_chat(config)`` makes this tab's controller the first time."""
    setup_page("Simple Chat")
    settings = settings_or_stop()
    with st.sidebar:
        config = model_settings(settings)
        st.caption("Nothing on this page is saved.")
    chat = tab_chat(SESSION_KEY, lambda: make_chat(config), config)
    st.title("Simple Chat")
    chat_area(chat, config, settings, page="simple", edit=False, feedback=False)
    with st.sidebar:  # drawn after the turn, so it knows whether there is anything to clear
        if st.button("Clear chat", disabled=not chat.messages):
            chat.messages.clear()
            chat.budget = None
            st.rerun()
