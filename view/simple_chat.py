"""The Simple Chat page: stream replies; the tab's messages are the history; nothing is saved."""

import streamlit as st

from controller.engines import PlainEngine
from view.chat import chat_area, model_settings, tab_chat
from view.common import settings_or_stop, setup_page

SESSION_KEY = "simple_chat"


def render(engine: type[PlainEngine]) -> None:
    """Draw the page; ``engine.from_defaults(config)`` answers each turn."""
    setup_page("Simple Chat")
    settings = settings_or_stop()
    with st.sidebar:
        config = model_settings(settings)
        st.caption("Nothing on this page is saved.")
    chat = tab_chat(SESSION_KEY, engine.from_defaults(config))
    st.title("Simple Chat")
    chat_area(chat, config, settings, page="simple", edit=False, feedback=False)
    with st.sidebar:  # drawn after the turn, so it knows whether there is anything to clear
        if st.button("Clear chat", disabled=not chat.messages):
            chat.new()
            st.rerun()
