"""The Chatbot With Memory page: the agent's chat, with the saved conversations at the top of the
sidebar and the model settings, tools and JSON mode below them."""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

from controller.assistants import apply_assistant
from controller.engines import AgentEngine
from controller.tools import ToolBox
from utils.image_generation import image_endpoint
from view.assistants import all_assistants, assistant_picker, chosen_assistant, starters
from view.chat import chat_area, tab_chat, take_action
from view.common import conversation_store, settings_or_stop, setup_page
from view.conversations import conversation_extras, conversation_list, follow_url
from view.knowledge_base import knowledge_bases
from view.markdown import no_remote_images, plain
from view.media import read_replies_toggle
from view.model_settings import local_endpoint, model_settings
from view.tools import tool_server_url, tools_sidebar
from view.web_search import web_search_for, web_search_toggle

SESSION_KEY = "memory_chat"


def render(engine: type[AgentEngine]) -> None:
    """Draw the page; ``engine.from_defaults(config, toolbox, web search)`` answers each turn."""
    setup_page("Chatbot With Memory", "🧠")
    settings = settings_or_stop()
    store = conversation_store(settings)
    web = web_search_for(settings)
    kbs = knowledge_bases(settings)
    toolbox = ToolBox(kbs, st.context.timezone, web=web, images=image_endpoint(settings))
    known = all_assistants(store)
    ahead = chosen_assistant(st.session_state.get(SESSION_KEY), known)
    with st.sidebar:
        top = st.container()
        config = model_settings(settings, ahead.instructions if ahead is not None else None)
    tab_chat(SESSION_KEY, engine.from_defaults(config, toolbox, web), store)
    follow_url(SESSION_KEY, store)
    chat = st.session_state[SESSION_KEY]
    with st.sidebar:
        assistant = assistant_picker(chat, known, kbs.names())
        searching = web_search_toggle(settings, web is not None)
        read_replies_toggle()
        tool_ids, json_mode = tools_sidebar(chat, toolbox, settings, assistant)
    if assistant is not None:
        local = local_endpoint(settings) if assistant.provider == "local" else None
        applied = apply_assistant(assistant, config, settings, local, toolbox.available())
        config, tool_ids, json_mode = applied.config, list(applied.tools), assistant.json_mode
        for note in applied.notes:
            st.sidebar.warning(note)
    tools_url = tool_server_url(settings, config) if tool_ids else None
    config = replace(config, json_mode=json_mode, tools_base_url=tools_url)
    chat = tab_chat(SESSION_KEY, engine.from_defaults(config, toolbox, web), store)
    chat.set_tools(tool_ids)
    chat.set_web_search(searching)
    take_action(chat, settings, "memory")
    with top:
        conversation_list(SESSION_KEY, store, "memory")
    with st.sidebar:
        conversation_extras(store)
    st.title("Chatbot With Memory")
    st.caption(
        f"Conversation: **{plain(chat.name)}** (saved automatically)"
        if chat.name
        else "New conversation: it is saved from your first message."
    )
    if chat.save_error:  # the last auto-save failed: said above the chat until a save works
        st.error(no_remote_images(chat.save_error))
    starters(assistant, chat, "memory")
    chat_area(chat, config, settings, page="memory")
