"""The actions a page's widgets queue for its next run: a message sent, Regenerate, an edit, Continue,
Retry and the local fallback. A widget callback queues one (``queue_action``); ``view.chat.take_action``
starts it at the top of the next run."""

from __future__ import annotations

from typing import Any

import streamlit as st


def action_key(page: str) -> str:
    """The session key of the action queued for the next run of ``page``."""
    return f"{page}_action"


def queue_action(page: str, action: dict[str, Any]) -> None:
    """Queue ``action`` (``{"kind": "send"|"regenerate"|"edit"|"continue"|"retry"|"fallback", ...}``)
    for the next run of ``page``, and close an open edit form (a widget callback)."""
    st.session_state.pop(f"{page}_editing", None)
    st.session_state[action_key(page)] = action
