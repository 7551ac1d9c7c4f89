"""The Simple Chat page: stream replies; the session's messages are the history; nothing is saved."""

from typing import Callable

import streamlit as st

from controller.simple_chat import SimpleChat
from utils.llm import LLMConfig
from view.common import llm_config_or_stop, provider_caption, render_messages, settings_or_stop, setup_page, stream_turn

SESSION_KEY = "simple_chat"


def render(make_chat: Callable[[LLMConfig], SimpleChat]) -> None:
    """Draw the page; ``make_chat(config)`` makes this tab's controller the first time."""
    setup_page("Simple Chat")
    st.title("Simple Chat")
    config = llm_config_or_stop(settings_or_stop())
    chat: SimpleChat = st.session_state.get(SESSION_KEY) or make_chat(config)
    st.session_state[SESSION_KEY] = chat
    if chat.config != config:
        chat.set_config(config)
    with st.sidebar:
        st.markdown(provider_caption(config))
        st.caption("Nothing on this page is saved.")
        if st.button("Clear chat", disabled=not chat.messages):
            chat.messages.clear()
            st.rerun()
    render_messages(chat.messages)
    if prompt := st.chat_input("Message Parley"):
        stream_turn(prompt, chat.stream_reply(prompt), config.model)
