"""Web search on the memory page: the sidebar's "Search the web" toggle (remembered with the
preferences) and the ``WebSearch`` the page's engine and its "Web search" tool use."""

from __future__ import annotations

import streamlit as st

from controller.web_search import WebSearch
from settings import Settings
from view.knowledge_base import knowledge_bases
from view.markdown import no_remote_images
from view.model_settings import choice_of, remember

TOGGLE_KEY = "memory_web_search"


def web_search_for(settings: Settings) -> WebSearch | None:
    """The web search ``settings`` configure, ranking with the knowledge bases' embedding model;
    None (said with ``st.error``) when PARLEY_FETCH_ALLOW cannot be read."""
    kbs = knowledge_bases(settings)
    try:
        return WebSearch.from_settings(settings, lambda: kbs.embed_model)
    except ValueError as exc:
        st.error(no_remote_images(f"Web search is off: PARLEY_FETCH_ALLOW could not be read ({exc})."))
        return None


def web_search_toggle(settings: Settings, available: bool) -> bool:
    """The "Search the web" toggle (starting from the remembered choice); True when it is on."""
    if TOGGLE_KEY not in st.session_state:
        st.session_state[TOGGLE_KEY] = bool(choice_of(settings).get("web_search", False))
    on = st.toggle(
        "Search the web",
        key=TOGGLE_KEY,
        disabled=not available,
        help="Every question is searched on the web first; the answer cites the pages as [1], [2]… "
        "and lists them under Sources.",
    )
    remember(settings, web_search=bool(on))
    return bool(on) and available
