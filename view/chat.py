"""The chat area every chat page shares: the messages with their actions, the reply being written,
its "Stop" button, the last failure (with Retry and the local fallback), the chat box and the
memory line.

Replies are written in the background (``controller.reply_job.ReplyJob``), so a reply goes on and is
saved while the user clicks elsewhere, opens another page or another conversation; any run of the
page draws it as it is. Every action (a message sent, Regenerate, an edit, Continue, Retry, Stop)
is a widget callback that queues it (``queue_action``); ``take_action`` starts it at the top of the
next run, before the sidebar and the chat are drawn, so both show its result at once: a new
conversation is listed as soon as its first message is sent, and Stop's run draws the finished
page (the note, the actions, the memory line) because the callback waits for the reply to be kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import streamlit as st

from controller.chat import Chat
from controller.engines import ChatEngine
from controller.errors import ChatError
from controller.reply_job import ReplyJob
from model.message import ToolCall
from model.store import BaseConversationStore
from settings import Settings
from utils.providers import LLMConfig
from view.actions import action_key, queue_action
from view.common import picked_model_server
from view.markdown import no_remote_images
from view.messages import render_messages
from view.model_settings import local_endpoint
from view.style import apply_style
from view.tools import live_tool_calls_view

#: Longest wait in Stop's callback for the reply to be kept, in seconds (it stops at the model's
#: next delta; the page draws "Stopping…" if it takes longer).
STOP_WAIT_SECONDS = 5.0


def _refused_key(page: str) -> str:
    return f"{page}_refused"


def tab_chat(key: str, engine: ChatEngine, store: BaseConversationStore | None = None) -> Chat:
    """This tab's Chat for a page (made the first time, saved to ``store`` with automatic titles),
    answering with ``engine`` from now on."""
    chat: Chat | None = st.session_state.get(key)
    if chat is None:
        chat = st.session_state[key] = Chat(engine, store, auto_title=store is not None)
    chat.use(engine)
    return chat


def local_config(settings: Settings, like: LLMConfig) -> LLMConfig:
    """The local model's config with ``like``'s limits and system prompt (for the fallback)."""
    local = local_endpoint(settings)
    return replace(
        like,
        provider="local",
        model=local.model,
        base_url=local.base_url,
        api_key=None,
        context_window=local.context_window,
    )


def take_action(chat: Chat, settings: Settings, page: str) -> None:
    """Start the action queued for ``page`` since the last run, in the background; an action the
    chat refuses (too long, a file that cannot be read) is kept to be said, with the user's text."""
    if chat.replying:  # kept for the run after the reply ends
        return
    action = st.session_state.pop(action_key(page), None)
    if action is None:
        return
    st.session_state.pop(_refused_key(page), None)
    kind, prefix = action["kind"], ""
    try:
        if kind == "send":
            turn = chat.send(action["text"], action.get("files", ()))
        elif kind == "spoken":
            turn = chat.send_spoken(action["audio"], action["mime"])
        elif kind == "regenerate":
            turn = chat.regenerate()
        elif kind == "edit":
            turn = chat.edit(action["index"], action["text"])
        elif kind == "continue":
            prefix = chat.messages[-1].content if chat.messages else ""
            turn = chat.continue_reply()
        elif kind == "without_web":
            turn = chat.retry(without_web=True)
        else:
            turn = chat.retry(local_config(settings, chat.config) if kind == "fallback" else None)
    except ChatError as exc:
        st.session_state[_refused_key(page)] = {"message": str(exc), "text": exc.refused_text or action.get("text")}
        return
    for notice in chat.notices:
        st.toast(no_remote_images(notice), icon="⚠️")
    chat.in_background(turn, prefix)


def chat_area(
    chat: Chat,
    config: LLMConfig,
    settings: Settings,
    page: str,
    *,
    edit: bool = True,
    feedback: bool = True,
) -> None:
    """Draw the conversation with its actions, the reply being written, the last failure, the chat
    box (files accepted) and the memory line; ``take_action`` must have run first.

    Args:
        chat: this tab's Chat for the page.
        config: the model in use.
        settings: for the demo-model notice and the redraw interval.
        page: a short page id, keeping this page's widgets and queued actions apart.
        edit: offer "Edit" under user messages.
        feedback: offer thumbs and comments under answers (saved pages).
    """
    apply_style()
    demo_model_notice(config, settings)
    replying = chat.replying
    render_messages(chat, page, edit=edit, feedback=feedback, actions=not replying)
    reply_slot = st.container()
    if not replying:
        _failure(chat, page)
    _refused(page)
    _memory_line(chat)
    if replying:
        with st.bottom:
            st.button("Stop", icon="⏹️", key=f"{page}_stop", on_click=_stop, args=(chat,), help="Stop the reply")
    st.chat_input(
        "Parley is replying… press Stop to send another message" if replying else "Message Parley",
        accept_file="multiple",
        accept_audio=True,
        disabled=replying,
        key=f"{page}_input",
        on_submit=_submitted,
        args=(page,),
    )
    job = chat.job
    if replying and job is not None:
        with reply_slot:
            _follow(job, settings.stream_redraw_interval)
        st.rerun()  # the reply is kept: draw the finished page (its actions, the list, the memory line)


def _submitted(page: str) -> None:
    """on_submit of the chat box: queue the message (text and files) to be sent."""
    value = st.session_state.get(f"{page}_input")
    if value is None:
        return
    text = getattr(value, "text", "") or ""
    files = [(f.name, f.getvalue()) for f in getattr(value, "files", []) or []]
    audio = getattr(value, "audio", None)
    if audio is not None:
        queue_action(page, {"kind": "spoken", "audio": audio.getvalue(), "mime": audio.type or "audio/wav"})
    elif text.strip() or files:
        queue_action(page, {"kind": "send", "text": text, "files": files})


def _stop(chat: Chat) -> None:
    """on_click of "Stop": stop the reply and wait (bounded) until it is kept, marked stopped."""
    job = chat.job
    if job is not None:
        job.stop(STOP_WAIT_SECONDS)


def _follow(job: ReplyJob, interval: float) -> None:
    """Draw ``job``'s reply in an assistant bubble until it ends, redrawn at most every ``interval``
    seconds (tool calls as they run, the text as Markdown in which no image is drawn). A rerun
    (any click) ends the drawing, never the reply."""
    with st.chat_message("assistant"):
        calls_slot, text_slot = st.empty(), st.empty()
    shown_calls: Sequence[ToolCall] = ()
    while True:
        calls, text = job.calls, job.text
        if calls != shown_calls:
            with calls_slot.container():
                live_tool_calls_view(calls)
            shown_calls = calls
        # Drawn every time, changed or not: a Streamlit call is where a click's rerun can begin.
        waiting = "Stopping…" if job.stopping else "Searching the web…" if job.searching else "…"
        text_slot.markdown(no_remote_images(text) if text else waiting)
        if job.wait(max(interval, 0.02)):
            return


def _failure(chat: Chat, page: str) -> None:
    """The last reply's failure, with "Retry" (and "Answer without the web" when the search failed,
    or the local model when a remote provider failed) while the user's message waits for an answer."""
    job = chat.job
    if job is None or job.error is None:
        return
    st.error(no_remote_images(str(job.error)))
    if chat.pending_user_text() is None:
        return
    retry, local = st.columns([1, 3])
    retry.button("Retry", icon="🔁", key=f"{page}_retry", on_click=queue_action, args=(page, {"kind": "retry"}))
    other = (
        ("Answer without the web", "without_web")
        if job.error.web_failed
        else ("Answer with the local model instead", "fallback")
        if job.error.can_fall_back
        else None
    )
    if other is not None:
        label, kind = other
        local.button(label, key=f"{page}_{kind}", on_click=queue_action, args=(page, {"kind": kind}))


def _refused(page: str) -> None:
    """A message or action refused before it was sent: why, and the user's text to copy back."""
    refused = st.session_state.get(_refused_key(page))
    if refused is None:
        return
    st.error(no_remote_images(refused["message"]))
    if refused.get("text", "").strip():
        st.code(refused["text"], language=None, wrap_lines=True)


#: Where the Help page says how to get better answers than the demo model's.
BETTER_ANSWERS = (
    ("a GGUF model in models/", "Help#a-better-local-model"),
    ("Ollama or another OpenAI-compatible server", "Help#other-providers"),
    ("a Groq or OpenAI key", "Help#other-providers"),
)


def demo_model_notice(config: LLMConfig, settings: Settings) -> None:
    """On the bundled SmolLM2-135M, one line above the chat: what it is, and three ways to better answers."""
    if config.provider != "local" or picked_model_server().path is not None or settings.local_model_path:
        return
    ways = ", ".join(f"[{label}]({target})" for label, target in BETTER_ANSWERS)
    st.info(
        "You are chatting with SmolLM2-135M, a 135-million-parameter demo model that often gets facts "
        f"wrong. For better answers use {ways}.",
        icon="ℹ️",
    )


def _memory_line(chat: Chat) -> None:
    """How much of the model's memory (context window) the last request used, with the detail in
    its tooltip."""
    budget = chat.budget
    if budget is None:
        return
    left_out = (
        f"{budget.left_out} older message{'s' if budget.left_out != 1 else ''} left out to fit"
        if budget.left_out
        else "nothing left out"
    )
    web = (
        f", {budget.web_tokens:,} from {budget.web_pages} web page{'s' if budget.web_pages != 1 else ''}"
        if budget.web_pages
        else ""
    )
    web_help = f" The web search's passages took {budget.web_tokens:,} tokens of it." if budget.web_pages else ""
    st.caption(
        f"Memory: {budget.sent_tokens:,} of {budget.token_limit:,} tokens{web}",
        help=(
            f"The last request sent {budget.sent_messages} messages, about {budget.sent_tokens:,} tokens of the "
            f"{budget.token_limit:,} the model can read at once (its context window less room for the reply); "
            f"{left_out}.{web_help}"
        ),
    )
