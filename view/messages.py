"""The chat's messages as bubbles, each with its actions.

Under every message: "Copy" (its Markdown to the clipboard, one click). Under a user message:
"Edit" (then "Send" or "Cancel"). Under a message with versions: "‹", "n / m", "›". Under the
last answer: "Regenerate". Under each answer on a saved page: thumbs up or down (``st.feedback``)
and a "Comment" popover. Actions that stream a reply (regenerate, a sent edit) are queued in
``st.session_state`` and run by ``view.chat.chat_area`` on the rerun, below the messages.
"""

from __future__ import annotations

import hashlib
import json

import streamlit as st
import streamlit.components.v1 as components

from controller.chat import Chat
from model.message import Message
from model.versions import version_count
from view.common import source_list
from view.markdown import plain
from view.tools import reply_body, tool_calls_view

#: Height of the copy button's frame, in pixels.
COPY_HEIGHT = 34

_COPY_HTML = """<!doctype html><html><body style="margin:0;font-family:sans-serif">
<button id="copy" title="Copy this message as Markdown" style="border:1px solid #ccc;border-radius:6px;
background:#fff;padding:3px 10px;font-size:13px;cursor:pointer">📋 Copy</button>
<script>
const text = __TEXT__;
const button = document.getElementById("copy");
button.addEventListener("click", async () => {
  try { await navigator.clipboard.writeText(text); }
  catch (error) {
    const area = document.createElement("textarea"); area.value = text; document.body.appendChild(area);
    area.select(); document.execCommand("copy"); area.remove();
  }
  button.textContent = "✓ Copied";
  setTimeout(() => { button.textContent = "📋 Copy"; }, 1500);
});
</script></body></html>"""


def action_key(page: str) -> str:
    """The session key of the action queued for the next rerun of ``page`` (regenerate or edit)."""
    return f"{page}_action"


def _editing_key(page: str) -> str:
    return f"{page}_editing"


def message_key(page: str, index: int, message: Message) -> str:
    """Widget key stem for message ``index``: changes when the message does (another version, a load)."""
    digest = hashlib.sha1(
        f"{message.timestamp}|{message.version_index}|{len(message.versions)}|{message.content[:200]}".encode()
    ).hexdigest()[:12]
    return f"{page}-m{index}-{digest}"


def render_messages(chat: Chat, page: str, *, edit: bool = True, feedback: bool = True) -> None:
    """Draw each message of ``chat`` as a bubble with its footer and actions.

    Args:
        chat: the page's Chat.
        page: the page's short id (keeps widget keys apart).
        edit: offer "Edit" under user messages.
        feedback: offer thumbs and a comment under answers (a saved conversation's page).
    """
    last = len(chat.messages) - 1
    for index, message in enumerate(chat.messages):
        key = message_key(page, index, message)
        with st.chat_message(message.role.value):
            if edit and st.session_state.get(_editing_key(page)) == key:
                _edit_form(page, index, message, key)
                continue
            tool_calls_view(message)
            reply_body(message)
            attachment_lines(message)
            message_footer(message)
            _actions(chat, page, index, message, key, is_last=index == last, edit=edit, feedback=feedback)


def attachment_lines(message: Message) -> None:
    """Under a user message: each attached file and how much of its text was sent."""
    for attachment in message.attachments:
        used, total = attachment.used_chars, attachment.total_chars
        if used >= total:
            st.caption(f"📎 {plain(attachment.name)} · all {total:,} characters were sent with this message.")
        else:
            st.caption(
                f"📎 {plain(attachment.name)} · the first {used:,} of {total:,} characters were sent; "
                "the rest does not fit the model's context window."
            )


def message_footer(message: Message) -> None:
    """Under a reply: the model that gave it, whether it was stopped or is incomplete, its "Sources"."""
    if message.role.value != "assistant":
        return
    if message.stopped:
        st.caption(f"⏹️ Stopped: this reply from {plain(message.model or 'the model')} is incomplete.")
    elif message.incomplete:
        st.caption(f"⚠️ This reply from {plain(message.model or 'the model')} was interrupted and is incomplete.")
    elif message.model:
        st.caption(plain(message.model))
    elif message.knowledge_base:
        st.caption(f"Nothing in “{plain(message.knowledge_base)}” passed the similarity threshold; no model was asked.")
    if message.sources:
        with st.expander("Sources"):
            source_list(message.sources)


def copy_button(text: str) -> None:
    """A one-click "Copy" button that puts ``text`` on the clipboard (the browser's Clipboard API)."""
    # A JavaScript string literal that cannot end the script or open a tag, whatever the message
    # holds (model output included): every "<", ">" and "&" is a \\u escape.
    literal = json.dumps(text).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    components.html(_COPY_HTML.replace("__TEXT__", literal), height=COPY_HEIGHT)


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
    is_user = message.role.value == "user"
    columns = st.columns([1, 1.6, 0.45, 0.6, 0.45, 3.5], gap="small", vertical_alignment="center")
    with columns[0]:
        copy_button(message.content)
    if is_user and edit:
        columns[1].button("Edit", icon="✏️", key=f"{key}-edit", on_click=_set_editing, args=(page, key))
    if not is_user and is_last:  # a callback, so the click's own run streams the reply (and Stop can end it)
        columns[1].button(
            "Regenerate", icon="🔄", key=f"{key}-regen", on_click=_queue, args=(page, {"kind": "regenerate"})
        )
    count = version_count(message)
    if count > 1:
        chosen = message.version_index
        if columns[2].button("‹", key=f"{key}-prev", disabled=chosen == 0, help="Previous version"):
            chat.choose_version(index, chosen - 1)
            st.rerun()
        columns[3].markdown(f"{chosen + 1} / {count}")
        if columns[4].button("›", key=f"{key}-next", disabled=chosen == count - 1, help="Next version"):
            chat.choose_version(index, chosen + 1)
            st.rerun()
    if not is_user and feedback:
        with columns[5]:
            _feedback(chat, index, message, key)


def _feedback(chat: Chat, index: int, message: Message, key: str) -> None:
    """Thumbs up/down for reply ``index`` and, once rated, a "Comment" popover; saved at once."""
    rating = message.feedback.rating if message.feedback else None
    comment = message.feedback.comment if message.feedback else ""
    thumbs, comment_area = st.columns([1, 2], vertical_alignment="center")
    with thumbs:
        value = st.feedback("thumbs", key=f"{key}-thumbs", default={1: 1, -1: 0}.get(rating))  # type: ignore[call-overload]
    chosen = {1: 1, 0: -1}.get(value) if value is not None else None
    if chosen != rating:
        chat.set_feedback(index, chosen, comment if chosen else "")
        st.rerun()
    if rating is None:
        return
    with comment_area.popover("Comment", icon="💬"):
        text = st.text_area("Comment on this answer (optional)", value=comment, key=f"{key}-comment")
        if st.button("Save comment", key=f"{key}-save-comment"):
            chat.set_feedback(index, rating, text)
            st.rerun()
    if comment:
        comment_area.caption(f"💬 {plain(comment[:80])}")


def _queue(page: str, action: dict) -> None:
    """on_click: queue ``action`` for ``view.chat.chat_area`` in the run this click starts.

    A callback rather than ``st.rerun()``: in Streamlit 1.67 a click during a run that
    ``st.rerun()`` started did not interrupt it (so the reply streamed there could not be stopped)
    and could be lost.
    """
    st.session_state.pop(_editing_key(page), None)
    st.session_state[action_key(page)] = action


def _set_editing(page: str, key: str | None) -> None:
    """on_click of "Edit" (``key`` of the message) and "Cancel" (None)."""
    if key is None:
        st.session_state.pop(_editing_key(page), None)
    else:
        st.session_state[_editing_key(page)] = key


def _send_edit(page: str, index: int, text_key: str) -> None:
    """on_click of "Send": queue the edit of message ``index`` with the text in ``text_key``."""
    _queue(page, {"kind": "edit", "index": index, "text": st.session_state.get(text_key, "")})


def _edit_form(page: str, index: int, message: Message, key: str) -> None:
    st.text_area("Edit your message", value=message.content, key=f"{key}-edit-text")
    send, cancel, _ = st.columns([1, 1, 4])
    send.button("Send", type="primary", key=f"{key}-send", on_click=_send_edit, args=(page, index, f"{key}-edit-text"))
    cancel.button("Cancel", key=f"{key}-cancel-edit", on_click=_set_editing, args=(page, None))
