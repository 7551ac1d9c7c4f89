"""Assistants: the Assistants page (list, form, Create assistant / Save changes / Duplicate / Delete,
import and export), and the memory page's "Assistant" picker and conversation starters."""

from __future__ import annotations

import json
from dataclasses import replace

import streamlit as st

from controller.chat import Chat
from controller.tools import ToolBox, tool_label
from model.assistant import (
    ALL_KNOWLEDGE_BASES,
    BUILT_INS,
    DEFAULT,
    DEFAULT_ASSISTANT,
    MAX_STARTERS,
    Assistant,
)
from model.store import BaseConversationStore, StoreError
from settings import PROVIDER_LABELS
from utils.providers import provider_name
from view.actions import queue_action
from view.common import conversation_store, flash, settings_or_stop, setup_page, show_flashes, widget_key
from view.knowledge_base import knowledge_bases
from view.markdown import no_remote_images, plain

SELECTED = "assistants_selected"
CONFIRM_DELETE = "assistants_confirm_delete"
NEW = "__new__"


def all_assistants(store: BaseConversationStore) -> dict[str, Assistant]:
    """The built-ins, then the stored assistants, by id (the stored ones only when the store answers)."""
    try:
        return {a.id: a for a in store.every_assistant()}
    except StoreError as exc:
        st.error(no_remote_images(f"Your assistants could not be read: {exc}"))
        return {a.id: a for a in BUILT_INS}


# ----- the memory page ---------------------------------------------------------------------------
def picker_key(chat: Chat | None) -> str:
    """The "Assistant" selectbox's key: one per conversation, so opening one shows its assistant."""
    return widget_key("memory_assistant", chat.name or "" if chat is not None else "")


def chosen_assistant(chat: Chat | None, known: dict[str, Assistant]) -> Assistant | None:
    """The assistant chosen for ``chat`` (the picker's value, else the conversation's), or None."""
    chosen = st.session_state.get(picker_key(chat), chat.assistant if chat is not None else None)
    return known.get(chosen or "")


def assistant_picker(chat: Chat, known: dict[str, Assistant], kb_names: list[str]) -> Assistant | None:
    """The sidebar's "Assistant" selectbox (default "Parley"); sets the chat's assistant and returns
    it. A conversation whose assistant was deleted goes on with Parley, and a note says so."""
    current = chat.assistant
    if current is not None and current not in known:
        st.info(f"This conversation's assistant ({plain(current)}) was deleted; it goes on with {DEFAULT_ASSISTANT}.")
        current = None
    options = ["", *known]

    def label(assistant_id: str) -> str:
        if not assistant_id:
            return DEFAULT_ASSISTANT
        assistant = known[assistant_id]
        needs_kb = ALL_KNOWLEDGE_BASES in assistant.tools and not kb_names
        return assistant.label + (" (needs a knowledge base)" if needs_kb else "")

    key = picker_key(chat)
    if key not in st.session_state:
        st.session_state[key] = current or ""
    choice = st.selectbox(
        "Assistant", options, format_func=label, key=key, help="A helper with its own instructions, model and tools."
    )
    chat.set_assistant(choice or None)
    return known.get(choice)


def starters(assistant: Assistant | None, chat: Chat, page: str) -> None:
    """A new chat with an assistant: its conversation starters as buttons (one sends its text)."""
    if assistant is None or chat.messages or not assistant.starters:
        return
    st.caption(f"{plain(assistant.label)}: {plain(assistant.description)}")
    columns = st.columns(len(assistant.starters))
    for column, (number, text) in zip(columns, enumerate(assistant.starters), strict=True):
        column.button(
            text,
            key=f"{page}_starter_{number}",
            on_click=queue_action,
            args=(page, {"kind": "send", "text": text, "files": []}),
            use_container_width=True,
        )


# ----- the Assistants page -----------------------------------------------------------------------
def render() -> None:
    """Draw the Assistants page."""
    setup_page("Assistants", "🧩")
    settings = settings_or_stop()
    store = conversation_store(settings)
    kbs = knowledge_bases(settings)
    known = all_assistants(store)
    st.title("Assistants")
    st.caption(
        "Named helpers with their own instructions, model, tools and knowledge. Choose one under "
        "**Assistant** on the Chatbot With Memory page. Built-in ones can be duplicated and changed."
    )
    show_flashes()
    with st.sidebar:
        _import_export(store, known)
    left, right = st.columns([2, 3], gap="large")
    with left:
        if st.button("Create assistant", icon="➕"):
            st.session_state[SELECTED] = NEW
        selected = st.session_state.get(SELECTED) or next(iter(known))
        ids = [NEW, *known] if selected == NEW else list(known)
        picked = st.radio(
            "Your assistants",
            ids,
            index=ids.index(selected) if selected in ids else 0,
            format_func=lambda i: "➕ New assistant" if i == NEW else _listed(known[i]),
            captions=["" if i == NEW else known[i].description for i in ids],
        )
    st.session_state[SELECTED] = picked
    assistant = Assistant(id="", name="") if picked == NEW else known[picked]
    tools = ToolBox(kbs).available()
    with right:
        _form(store, assistant, [t for t in tools if not t.startswith("kb:")], kbs.names())
        if picked != NEW:
            _actions(store, assistant)


def _listed(assistant: Assistant) -> str:
    """An assistant's line in the list: its emoji and name, "(built in)" for the examples."""
    return assistant.label + (" (built in)" if assistant.built_in else "")


def _form(store: BaseConversationStore, assistant: Assistant, tools: list[str], kb_names: list[str]) -> None:
    """The assistant's fields; its submit button creates or saves it."""
    new = not assistant.id
    with st.form(f"assistant_form_{assistant.id or 'new'}"):
        edited = _fields(assistant, tools, kb_names)
        submitted = st.form_submit_button("Create assistant" if new else "Save changes", type="primary")
    gone = [t for t in assistant.tools if t not in tools and not t.startswith("kb:")]
    for tool in gone:
        st.warning(f"The tool {plain(tool)!r} no longer exists here; it is skipped when this assistant answers.")
    if submitted:
        _save(store, edited, new)


def _fields(assistant: Assistant, tools: list[str], kb_names: list[str]) -> Assistant:
    """Draw the form's fields, filled from ``assistant``; returns the assistant as edited."""
    name = st.text_input("Name", assistant.name, max_chars=60)
    emoji = st.text_input("Emoji", assistant.emoji, max_chars=8)
    description = st.text_input("Description", assistant.description, max_chars=300)
    instructions = st.text_area("Instructions", assistant.instructions, height=160)
    starter_text = st.text_area(
        "Conversation starters", "\n".join(assistant.starters), help=f"One per line, at most {MAX_STARTERS}."
    )
    own = [t for t in assistant.tools if not t.startswith("kb:")]
    chosen_tools = st.multiselect("Tools", list(dict.fromkeys([*tools, *own])), own, format_func=tool_label)
    own_kbs = [t[3:] for t in assistant.tools if t.startswith("kb:")]
    chosen_kbs = st.multiselect(
        "Knowledge bases",
        list(dict.fromkeys(["*", *kb_names, *own_kbs])),
        own_kbs,
        format_func=lambda n: "Every knowledge base" if n == "*" else n,
    )
    providers = [DEFAULT, *PROVIDER_LABELS]
    provider = st.selectbox(
        "Provider",
        providers,
        providers.index(assistant.provider) if assistant.provider in providers else 0,
        format_func=lambda p: "The sidebar's" if p == DEFAULT else provider_name(p),
    )
    model = st.text_input("Model", assistant.model, help='"default": the model the sidebar would pick.')
    temperature = st.number_input(
        "Temperature", 0.0, 2.0, assistant.temperature, 0.1, placeholder="The sidebar's", format="%.1f"
    )
    json_mode = st.checkbox("JSON mode", assistant.json_mode)
    return replace(
        assistant,
        name=name,
        emoji=emoji,
        description=description,
        instructions=instructions,
        starters=tuple(starter_text.splitlines()),
        tools=(*chosen_tools, *(f"kb:{n}" for n in chosen_kbs)),
        provider=provider,
        model=model or DEFAULT,
        temperature=temperature,
        json_mode=json_mode,
    )


def _save(store: BaseConversationStore, edited: Assistant, new: bool) -> None:
    """Create or update ``edited``; a refusal is said, the form keeps what was typed."""
    try:
        saved = store.create_assistant(edited) if new else store.update_assistant(edited)
    except StoreError as exc:
        st.error(no_remote_images(str(exc)))
        return
    st.session_state[SELECTED] = saved.id
    flash(f"{saved.label} is {'created' if new else 'saved'}.")
    st.rerun()


def _actions(store: BaseConversationStore, assistant: Assistant) -> None:
    """ "Duplicate" and "Delete" (asking first) for the assistant shown."""
    duplicate, delete = st.columns(2)
    if duplicate.button("Duplicate", icon="📄", use_container_width=True):
        copy = replace(assistant, id="", name=f"{assistant.name} (copy)", built_in=False)
        _save(store, copy, True)
    if delete.button("Delete", icon="🗑️", disabled=assistant.built_in, use_container_width=True):
        st.session_state[CONFIRM_DELETE] = assistant.id
    if st.session_state.get(CONFIRM_DELETE) != assistant.id:
        return
    st.warning(f"Delete {plain(assistant.label)}? Its conversations stay and go on with {DEFAULT_ASSISTANT}.")
    yes, cancel = st.columns(2)
    if yes.button("Yes, delete", type="primary", use_container_width=True):
        st.session_state.pop(CONFIRM_DELETE, None)
        try:
            store.delete_assistant(assistant.id)
        except StoreError as exc:
            st.error(no_remote_images(str(exc)))
            return
        st.session_state.pop(SELECTED, None)
        flash(f"{assistant.label} is deleted.")
        st.rerun()
    if cancel.button("Cancel", use_container_width=True):
        st.session_state.pop(CONFIRM_DELETE, None)
        st.rerun()


def _import_export(store: BaseConversationStore, known: dict[str, Assistant]) -> None:
    """Export the stored assistants as one JSON file; import one (all of it, or nothing)."""
    stored = [a.to_dict() for a in known.values() if not a.built_in]
    st.download_button(
        "Export assistants",
        json.dumps({"assistants": stored}, ensure_ascii=False, indent=1),
        file_name="assistants.json",
        mime="application/json",
        disabled=not stored,
    )
    upload = st.file_uploader("Import assistants", type=["json"], key="assistants_import")
    if upload is None or st.session_state.get("assistants_imported") == upload.file_id:
        return
    st.session_state["assistants_imported"] = upload.file_id
    try:
        added = store.import_assistants(upload.getvalue())
    except StoreError as exc:
        st.error(no_remote_images(f"{upload.name}: {exc}"))
        return
    flash(f"Imported {len(added)} assistant{'s' if len(added) != 1 else ''} from {upload.name}.")
    st.rerun()


def assistant_lines(store: BaseConversationStore) -> list[str]:
    """One Markdown line per assistant (emoji, name, description), for Home."""
    return [
        f"{plain(a.label)}: {plain(a.description)}" if a.description else plain(a.label)
        for a in all_assistants(store).values()
    ]
