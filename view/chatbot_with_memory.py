"""The Chatbot With Memory page: the agent's chat plus a sidebar to save, load and delete conversations."""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

from controller.engines import AgentEngine
from controller.tools import ToolBox
from view.chat import chat_area, model_settings, tab_chat
from view.common import conversation_store, settings_or_stop, setup_page
from view.conversations import conversation_sidebar
from view.knowledge_base import knowledge_bases
from view.markdown import no_remote_images, plain
from view.tools import tool_server_url, tools_sidebar

SESSION_KEY = "memory_chat"


def render(engine: type[AgentEngine]) -> None:
    """Draw the page; ``engine.from_defaults(config, toolbox)`` answers each turn."""
    setup_page("Chatbot With Memory", "🧠")
    settings = settings_or_stop()
    toolbox = ToolBox(knowledge_bases(settings.knowledge_base_dir), st.context.timezone)
    with st.sidebar:
        config = model_settings(settings)
        tool_ids, json_mode = tools_sidebar(st.session_state.get(SESSION_KEY), toolbox)
    tools_url = tool_server_url(settings, config) if tool_ids else None
    config = replace(config, json_mode=json_mode, tools_base_url=tools_url)
    store = conversation_store(settings)
    chat = tab_chat(SESSION_KEY, engine.from_defaults(config, toolbox), store)
    chat.set_tools(tool_ids)
    with st.sidebar:
        conversation_sidebar(chat, store)
    st.title("Chatbot With Memory")
    st.caption(
        f"Conversation: **{plain(chat.name)}** (saved automatically)"
        if chat.name
        else "New conversation: it is saved from your first message."
    )

    if chat.save_error:  # the last auto-save failed: said above the chat until a save works
        st.error(no_remote_images(chat.save_error))
    chat_area(chat, config, settings, page="memory")
