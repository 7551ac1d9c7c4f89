"""The Home page: what Parley is, the active provider and model, links to the chat pages."""

import streamlit as st

from view.common import llm_config_or_stop, provider_caption, settings_or_stop, setup_page


def render() -> None:
    """Draw the Home page (starts the local model if it is the active provider)."""
    setup_page("Home", "🏠")
    st.title("Parley")
    st.markdown(
        "A private, local-first chat app. With no API key and no network it answers from a small "
        "model running on this machine; with a Groq or OpenAI key, or any OpenAI-compatible "
        "server, it uses that instead. Your conversations stay in a file on this machine."
    )
    config = llm_config_or_stop(settings_or_stop())
    st.subheader("Active model")
    st.markdown(provider_caption(config))
    st.subheader("Start chatting")
    st.page_link("pages/1_Simple_Chat.py", label="Simple Chat", icon="💬")
    st.caption("A quick chat; nothing is saved.")
    st.page_link("pages/2_Chatbot_With_Memory.py", label="Chatbot With Memory", icon="🧠")
    st.caption("Chat with memory; save, load and delete named conversations.")
