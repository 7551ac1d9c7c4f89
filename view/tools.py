"""The agent's tools on the memory page: the sidebar that chooses them (and JSON mode), each tool
call shown as a "Used <tool>" expander (live, with a status line, and again from the saved reply),
and a JSON-mode reply shown as formatted JSON."""

from __future__ import annotations

import json

import streamlit as st

from controller.chat import Chat
from controller.tools import ToolBox, arguments_text, call_label, tool_label
from model.assistant import Assistant
from model.message import Message, ToolCall
from settings import Settings
from utils.local_server import TOOL_CHAT_FORMAT, LocalServer, LocalServerError
from utils.providers import LLMConfig
from utils.sandbox import ISOLATION_NOTES, isolation
from view.common import picked_model_server, source_list, starting_notice, widget_key
from view.markdown import no_remote_images, plain
from view.model_settings import choice_of, remember

JSON_MODE_KEY = "memory_json_mode"


def tools_sidebar(
    chat: Chat, toolbox: ToolBox, settings: Settings, assistant: Assistant | None = None
) -> tuple[list[str], bool]:
    """The "Tools" multiselect and the "JSON mode" switch; returns (chosen tool ids, JSON mode on).

    The multiselect starts from ``chat.tools`` (the open conversation's) or, in a new chat, from the
    tools chosen last (remembered with the preferences); it is keyed by the conversation's name, so
    opening another conversation shows its tools. While an ``assistant`` is chosen, its tools and
    JSON mode are used and only named here.
    """
    if assistant is not None:
        labels = ", ".join(tool_label(t) for t in assistant.tools) or "none"
        st.caption(f"**Tools** (the assistant's): {plain(labels)}" + (" · JSON mode" if assistant.json_mode else ""))
        return list(assistant.tools), assistant.json_mode
    options = toolbox.available()
    remembered = [t for t in choice_of(settings)["tools"] if t in options]
    current = list(chat.tools) if chat.name or chat.messages else remembered
    options += [t for t in current if t not in options]
    chosen = st.multiselect(
        "Tools",
        options,
        default=current,
        format_func=tool_label,
        key=widget_key("memory_tools", chat.name or ""),
        placeholder="No tools: a plain chat",
        help="The agent decides when to call a chosen tool. Remembered with the conversation.",
    )
    json_mode = st.toggle(
        "JSON mode", key=JSON_MODE_KEY, help='Replies are asked for as one JSON object (response_format "json_object").'
    )
    remember(settings, tools=list(chosen))
    level = isolation()
    if level != "full":  # Run Python is not offered: say why, and how to turn it on
        st.warning(ISOLATION_NOTES[level])
    elif "python" in chosen:
        st.caption(ISOLATION_NOTES[level])
    return chosen, json_mode


@st.cache_resource(show_spinner=False)
def _tool_server(model_path: object, context_window: int, start_timeout: float, threads: int | None) -> LocalServer:
    """The bundled model's second server, in the ``chatml-function-calling`` format, shared by all tabs."""
    return LocalServer.ensure(
        None,
        model_path,
        context_window,
        start_timeout,
        threads,
        chat_format=TOOL_CHAT_FORMAT,  # type: ignore[arg-type]
    )


def tool_server_url(settings: Settings, config: LLMConfig) -> str | None:
    """The API root of the server that gives the bundled local model tool calls (started with a
    spinner the first time), or None when the provider is not the bundled model, or it failed (said
    with ``st.error``; tools are then sent to the model's own server, which ignores them)."""
    if config.provider != "local" or picked_model_server().path is not None:
        return None
    try:
        usual = "Starting the local model's tool-calling server… a few seconds the first time."
        with st.spinner(starting_notice(usual, settings.local_model_path, settings.local_llm_threads)):
            args = (
                settings.local_model_path,
                settings.local_context_window,
                settings.local_server_start_timeout,
                settings.local_llm_threads,
            )
            server = _tool_server(*args)
            if server.process is not None and server.process.poll() is not None:  # it died: start another
                _tool_server.clear()
                server = _tool_server(*args)
            return server.base_url
    except LocalServerError as exc:
        st.error(no_remote_images(f"Tools are unavailable with the local model: {exc}"))
        return None


def tool_calls_view(message: Message, tool_ids: tuple[str, ...] = ()) -> None:
    """A reply's tool calls, each as a collapsed "Used <tool>" expander with arguments and result;
    ``tool_ids`` are the tools the question was sent with (for the labels of knowledge bases)."""
    for call in message.tool_calls:
        with st.expander(_title(call, tool_ids), icon="⚠️" if call.error else "🛠️"):
            call_details(call)


def _title(call: ToolCall, tool_ids: tuple[str, ...] = ()) -> str:
    """ "Used <tool>" with the tool's label as the "Tools" picker shows it."""
    return f"Used {plain(call_label(call.name, tool_ids))}" + (" (failed)" if call.error else "")


def call_details(call: ToolCall) -> None:
    """One tool call's arguments (Python code as code) and result (with a knowledge base's sources)."""
    arguments = arguments_text(call.arguments)
    code = _code_of(call) if call.name == "run_python" else None
    st.caption("Code" if code is not None else "Arguments")
    st.code(code if code is not None else arguments, language="python" if code is not None else "json")
    if call.result is None:
        return
    st.caption("Result" if not call.error else "Error (given back to the model)")
    st.code(call.result, language=None, wrap_lines=True)
    source_list(call.sources)


def _code_of(call: ToolCall) -> str | None:
    try:
        code = json.loads(call.arguments).get("code")
    except (ValueError, AttributeError):
        return None
    return code if isinstance(code, str) else None


def live_tool_calls_view(calls: list[ToolCall], tool_ids: tuple[str, ...] = ()) -> None:
    """The tool calls of a reply being written: a running one as a status line "Using <tool>…",
    a finished one as "Used <tool>" with its result (or an error)."""
    for call in calls:
        label = plain(call_label(call.name, tool_ids))
        if call.result is None:
            with st.status(f"Using {label}…", expanded=False):
                call_details(call)
        else:
            with st.status(_title(call, tool_ids), state="error" if call.error else "complete", expanded=False):
                call_details(call)


def reply_body(message: Message) -> None:
    """A message's text: Markdown, or for a JSON-mode reply formatted JSON (``st.json``); a JSON-mode
    reply that is not valid JSON is shown as text with a note saying so."""
    if not message.json_mode or message.role.value != "assistant":
        st.markdown(no_remote_images(message.content))
        return
    try:
        value = json.loads(message.content)
    except ValueError as exc:
        st.markdown(no_remote_images(message.content))
        st.caption(f"⚠️ JSON mode was on, but this reply is not valid JSON ({exc}); it is shown as text.")
        return
    st.json(value)
