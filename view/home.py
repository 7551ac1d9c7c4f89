"""The Home page: what Parley is, the active provider and model and whether it answers, links."""

import streamlit as st

from utils.model_list import check_provider
from utils.providers import LLMConfig, config_problem
from view.assistants import assistant_lines
from view.common import conversation_store, provider_caption, settings_or_stop, setup_page
from view.model_settings import active_config


@st.cache_data(ttl=30, show_spinner=False)
def _provider_problem(config: LLMConfig) -> str | None:
    """``check_provider`` asked at most every 30 s per config, not on every rerun of Home."""
    return check_provider(config)


def render() -> None:
    """Draw the Home page (starts the local model if it is the active provider)."""
    setup_page("Home", "🏠")
    st.title("Parley")
    st.markdown(
        "A private, local-first chat app. With no API key and no network it answers from a small "
        "model running on this machine; with a Groq or OpenAI key, or any OpenAI-compatible "
        "server, it uses that instead. Your conversations stay on this machine (a file, or the database "
        "you configure)."
    )
    settings = settings_or_stop()
    config = active_config(settings)
    st.subheader("Active model")
    st.markdown(provider_caption(config))
    problem = config_problem(config)
    if problem is None:
        with st.spinner("Checking that the provider answers…"):
            problem = _provider_problem(config)
    if problem is None:
        st.success("The provider answers.", icon="✅")
    else:
        st.error(problem, icon="⚠️")
    st.caption(
        "Change the provider, model, temperature or system prompt under Model settings in the sidebar of any "
        "chat page; your choices are remembered."
    )
    st.subheader("Start chatting")
    st.page_link("pages/1_Simple_Chat.py", label="Simple Chat", icon="💬")
    st.caption("A quick chat; nothing is saved.")
    st.page_link("pages/2_Chatbot_With_Memory.py", label="Chatbot With Memory", icon="🧠")
    st.caption("Chat with memory; every chat is saved from its first message; load, rename and delete them.")
    st.page_link("pages/3_Knowledge_Base.py", label="Knowledge Base", icon="📚")
    st.caption("Make a knowledge base from your files and ask about them, with sources.")
    st.page_link("pages/4_Help.py", label="Help", icon="❓")
    st.caption("How to use Parley: chatting and saving, knowledge bases, tools, models and providers, privacy.")
    st.subheader("Assistants")
    st.page_link("pages/5_Assistants.py", label="Assistants", icon="🧩")
    st.caption("Helpers with their own instructions, model and tools: pick one on Chatbot With Memory.")
    st.markdown("\n".join(f"- {line}" for line in assistant_lines(conversation_store(settings))))
