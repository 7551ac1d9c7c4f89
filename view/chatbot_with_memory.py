"""The Chatbot With Memory page: agent chat plus a sidebar to save, load and delete conversations.

UI labels (DESIGN.md, relied on by tests): "Save", "Enter a name to save the conversation:",
"Confirm Save", "Saved Conversations", and one popover per name holding "Load" and "Delete".
"""

from typing import Callable

import streamlit as st

from controller.chatbot_with_memory import MemoryChat
from model.conversation_store import ConversationStore, StoreError
from utils.llm import LLMConfig
from view.common import (
    conversation_store,
    flash,
    llm_config_or_stop,
    provider_caption,
    render_messages,
    settings_or_stop,
    setup_page,
    short_name,
    show_flashes,
    stream_turn,
    widget_key,
)

SESSION_KEY = "memory_chat"
SHOW_SAVE = "memory_show_save"
PENDING_OVERWRITE = "memory_pending_overwrite"


def render(make_chat: Callable[[LLMConfig, ConversationStore], MemoryChat]) -> None:
    """Draw the page; ``make_chat(config, store)`` makes this tab's controller the first time."""
    setup_page("Chatbot With Memory", "🧠")
    settings = settings_or_stop()
    config = llm_config_or_stop(settings)
    store = conversation_store(settings.conversations_file)
    chat: MemoryChat = st.session_state.get(SESSION_KEY) or make_chat(config, store)
    st.session_state[SESSION_KEY] = chat
    if chat.config != config:
        chat.set_config(config)
    with st.sidebar:
        _sidebar(chat, store, config)
    st.title("Chatbot With Memory")
    st.caption(f"Conversation: **{chat.name}** (saved automatically)" if chat.name else "Unsaved conversation")
    render_messages(chat.messages)
    if prompt := st.chat_input("Message Parley"):
        stream_turn(prompt, chat.stream_reply(prompt), config.model)
        if chat.save_error:
            st.error(chat.save_error)


def _sidebar(chat: MemoryChat, store: ConversationStore, config: LLMConfig) -> None:
    st.markdown(provider_caption(config))
    show_flashes()
    try:
        names = store.names()  # reads the file first, so a bad one is moved aside and reported now
    except StoreError as exc:
        st.error(str(exc))
        names = []
    for notice in store.pop_notices():
        st.warning(notice)
    if chat.save_error:
        st.error(chat.save_error)
    if st.button("New chat", icon="➕", use_container_width=True):
        chat.new_chat()
        st.rerun()
    if st.button("Save", icon="💾", use_container_width=True):
        st.session_state[SHOW_SAVE] = True
    if st.session_state.get(SHOW_SAVE):
        _save_form(chat, store)
    st.header("Saved Conversations")
    if not names:
        st.caption("No saved conversations yet.")
    for name in names:
        with st.popover(short_name(name), use_container_width=True, key=widget_key("conv", name)):
            st.caption(name)
            if st.button("Load", key=widget_key("load", name)):
                _act(lambda: chat.load(name), f"Loaded “{short_name(name)}”.")
            if st.button("Delete", key=widget_key("delete", name)):
                _act(lambda: chat.delete(name), f"Deleted “{short_name(name)}”.")


def _save_form(chat: MemoryChat, store: ConversationStore) -> None:
    name = st.text_input("Enter a name to save the conversation:", value=chat.name or "", key="memory_save_name")
    pending = st.session_state.get(PENDING_OVERWRITE)
    if st.button("Confirm Save", type="primary"):
        try:
            exists = name.strip() in store.load_all() and name.strip() != chat.name
        except StoreError as exc:
            st.error(str(exc))
            return
        if exists:
            st.session_state[PENDING_OVERWRITE] = pending = name.strip()
        else:
            _save(chat, name)
    if pending is not None:
        st.warning(f"A conversation called “{short_name(pending)}” already exists. Replace it with this one?")
        replace, cancel = st.columns(2)
        if replace.button("Replace", type="primary"):
            _save(chat, pending)
        if cancel.button("Cancel"):
            st.session_state.pop(PENDING_OVERWRITE, None)
            st.rerun()


def _save(chat: MemoryChat, name: str) -> None:
    st.session_state.pop(PENDING_OVERWRITE, None)

    def save() -> None:
        saved = chat.save_as(name)
        st.session_state[SHOW_SAVE] = False
        flash(f"Saved as “{short_name(saved)}”. New messages are saved automatically.")

    _act(save, None)


def _act(action: Callable[[], None], success: str | None) -> None:
    """Run a store action; on success queue ``success`` and rerun, on failure show the error."""
    try:
        action()
    except StoreError as exc:
        st.error(str(exc))
        return
    if success:
        flash(success)
    st.rerun()
