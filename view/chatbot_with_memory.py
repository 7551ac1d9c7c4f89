"""The Chatbot With Memory page: agent chat plus a sidebar to save, load and delete conversations."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from controller.chatbot_with_memory import MemoryChat
from model.store_base import Store
from utils.llm import LLMConfig
from view.chat import chat_area, model_settings, tab_chat
from view.common import conversation_store, settings_or_stop, setup_page
from view.conversations import conversation_sidebar

SESSION_KEY = "memory_chat"


def render(make_chat: Callable[[LLMConfig, Store], MemoryChat]) -> None:
    """Draw the page; ``make_chat(config, store)`` makes this tab's controller the first time."""
    setup_page("Chatbot With Memory", "🧠")
    settings = settings_or_stop()
    with st.sidebar:
        config = model_settings(settings)
    store = conversation_store(settings)
    chat = tab_chat(SESSION_KEY, lambda: make_chat(config, store), config)
    chat.auto_title = True  # saved from the first message, so a refresh loses nothing
    with st.sidebar:
        conversation_sidebar(chat, store)
    st.title("Chatbot With Memory")
    st.caption(
        f"Conversation: **{chat.name}** (saved automatically)"
        if chat.name
        else "New conversation: it is saved from your first message."
    )

    if chat.save_error:  # the last auto-save failed: said above the chat until a save works
        st.error(chat.save_error)
    chat_area(chat, config, settings, page="memory")
