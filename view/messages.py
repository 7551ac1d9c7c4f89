"""The chat's messages as bubbles, each with its actions in one row that wraps rather than clips.

Under every message: "Copy" (its Markdown to the clipboard, one click). Under a reply: "Read
aloud" (``view.media``). Under a user message:
"Edit" (then "Send" or "Cancel"). Under a message with versions: "Previous version", "n / m",
"Next version" (icons with tooltips). Under the last answer: "Regenerate", and "Continue" when it
stopped at the token limit. Under each answer on a saved page: thumbs up or down (``st.feedback``)
and, once rated, a "Comment" popover. Actions that start a reply are queued by their callbacks
(``view.actions.queue_action``) and started by ``view.chat.take_action`` at the top of the next run.
On a narrow screen the actions show their icons only (``view.style``).
"""

from __future__ import annotations

import hashlib

import streamlit as st

from controller.chat import Chat
from model.message import Message
from model.versions import version_count
from view.actions import queue_action
from view.common import source_list
from view.markdown import plain
from view.media import attachment_views, read_aloud_button, speak_if_asked, tool_images
from view.style import ACTIONS_PREFIX, copy_button
from view.tools import reply_body, tool_calls_view

#: The last reply's actions that queue a turn: (label, icon, action kind, tooltip); "Continue" only
#: under a reply cut by the token limit.
REPLY_ACTIONS = (
    ("Regenerate", "🔄", "regenerate", "Regenerate"),
    ("Continue", "⏩", "continue", "Continue this reply"),
)


def _editing_key(page: str) -> str:
    return f"{page}_editing"


def message_key(page: str, index: int, message: Message) -> str:
    """Widget key stem for message ``index``: changes when the message does (another version, a load)."""
    digest = hashlib.sha1(
        f"{message.timestamp}|{message.version_index}|{len(message.versions)}|{message.content[:200]}".encode()
    ).hexdigest()[:12]
    return f"{page}-m{index}-{digest}"


def render_messages(chat: Chat, page: str, *, edit: bool = True, feedback: bool = True, actions: bool = True) -> None:
    """Draw each message of ``chat`` as a bubble with its footer and actions.

    Args:
        chat: the page's Chat.
        page: the page's short id (keeps widget keys apart).
        edit: offer "Edit" under user messages.
        feedback: offer thumbs and a comment under answers (a saved conversation's page).
        actions: draw the actions at all (False while a reply is being written).
    """
    messages = chat.messages
    last = len(messages) - 1
    tools: tuple[str, ...] = ()
    for index, message in enumerate(messages):
        key = message_key(page, index, message)
        tools = message.tools if message.is_user else tools
        with st.chat_message(message.role.value):
            if edit and st.session_state.get(_editing_key(page)) == key:
                _edit_form(page, index, message, key)
                continue
            tool_calls_view(message, tools)
            reply_body(message)
            tool_images(message, chat.attachments)
            attachment_views(message, chat.attachments)
            message_footer(message)
            if actions:
                _actions(chat, page, index, message, key, is_last=index == last, edit=edit, feedback=feedback)
                if message.is_reply:
                    speak_if_asked(chat, page, message, key, is_last=index == last)


def message_footer(message: Message) -> None:
    """Under a reply: the model that gave it; whether it was stopped, cut at the token limit or is
    incomplete; its "Sources"."""
    if message.role.value != "assistant":
        return
    model = plain(message.model or "the model")
    if message.stopped:
        st.caption(f"⏹️ Stopped: this reply from {model} is incomplete.")
    elif message.incomplete:
        st.caption(f"⚠️ This reply from {model} was interrupted and is incomplete.")
    elif message.cut:
        st.caption(f"✂️ This reply from {model} reached the token limit (Max tokens per reply).")
    elif message.model:
        st.caption(plain(message.model))
    elif message.knowledge_base:
        st.caption(f"Nothing in “{plain(message.knowledge_base)}” passed the similarity threshold; no model was asked.")
    if message.sources:
        with st.expander("Sources"):
            source_list(message.sources)


def _actions(
    chat: Chat,
    page: str,
    index: int,
    message: Message,
    key: str,
    *,
    is_last: bool,
    edit: bool,
    feedback: bool,
) -> None:
    with st.container(horizontal=True, gap="small", vertical_alignment="center", key=f"{ACTIONS_PREFIX}{key}"):
        copy_button(message.content, key=f"{key}-copy")
        if message.is_reply:
            read_aloud_button(page, key)
        if message.is_user and edit:
            st.button("Edit", icon="✏️", key=f"{key}-edit", help="Edit", on_click=_set_editing, args=(page, key))
        if message.is_reply and is_last:
            for label, icon, kind, tip in REPLY_ACTIONS if message.cut else REPLY_ACTIONS[:1]:
                st.button(
                    label, icon=icon, key=f"{key}-{kind}", help=tip, on_click=queue_action, args=(page, {"kind": kind})
                )
        _version_arrows(chat, index, message, key)
        if message.is_reply and feedback:
            _feedback(chat, index, message, key)


def _version_arrows(chat: Chat, index: int, message: Message, key: str) -> None:
    """ "Previous version", "n / m" and "Next version", when the message has versions."""
    count = version_count(message)
    if count < 2:
        return
    chosen = message.version_index
    st.button(
        "Previous version",
        icon=":material/chevron_left:",
        key=f"icon-prev-{key}",
        help="Previous version",
        disabled=chosen == 0,
        on_click=chat.choose_version,
        args=(index, chosen - 1),
    )
    st.markdown(f"{chosen + 1} / {count}", width="content")
    st.button(
        "Next version",
        icon=":material/chevron_right:",
        key=f"icon-next-{key}",
        help="Next version",
        disabled=chosen == count - 1,
        on_click=chat.choose_version,
        args=(index, chosen + 1),
    )


def _feedback(chat: Chat, index: int, message: Message, key: str) -> None:
    """Thumbs up/down for reply ``index`` and, once rated, a "Comment" popover; saved at once."""
    rating = message.feedback.rating if message.feedback else None
    comment = message.feedback.comment if message.feedback else ""
    value = st.feedback("thumbs", key=f"{key}-thumbs", default={1: 1, -1: 0}.get(rating))  # type: ignore[call-overload]
    chosen = {1: 1, 0: -1}.get(value) if value is not None else None
    if chosen != rating:
        chat.set_feedback(index, chosen, comment if chosen else "")
        st.rerun()
    if rating is None:
        return
    with st.popover("Comment", icon="💬"):
        text = st.text_area("Comment on this answer (optional)", value=comment, key=f"{key}-comment")
        if st.button("Save comment", key=f"{key}-save-comment"):
            chat.set_feedback(index, rating, text)
            st.rerun()
    if comment:
        st.caption(f"💬 {plain(comment[:80])}")


def _set_editing(page: str, key: str | None) -> None:
    """on_click of "Edit" (``key`` of the message) and "Cancel" (None)."""
    if key is None:
        st.session_state.pop(_editing_key(page), None)
    else:
        st.session_state[_editing_key(page)] = key


def _send_edit(page: str, index: int, text_key: str) -> None:
    """on_click of "Send": queue the edit of message ``index`` with the text in ``text_key``."""
    queue_action(page, {"kind": "edit", "index": index, "text": st.session_state.get(text_key, "")})


def _edit_form(page: str, index: int, message: Message, key: str) -> None:
    st.text_area("Edit your message", value=message.content, key=f"{key}-edit-text")
    with st.container(horizontal=True, gap="small"):
        st.button(
            "Send", type="primary", key=f"{key}-send", on_click=_send_edit, args=(page, index, f"{key}-edit-text")
        )
        st.button("Cancel", key=f"{key}-cancel-edit", on_click=_set_editing, args=(page, None))
