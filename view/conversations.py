"""The saved conversations in the sidebar of the memory and knowledge-base pages.

UI labels (tests and checks outside this repository rely on them): "Save", "Enter a name to save the conversation:",
"Confirm Save", "Saved Conversations", and one popover per name holding "Load" and "Delete"
("Delete" asks "Yes, delete" / "Cancel"), plus "Rename" and Markdown/JSON export. Below the list:
"Feedback" (rated answers as JSON Lines), "Import conversations" and "Restore from backup".
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import streamlit as st

from controller.chat import Chat
from model.message import Message
from model.store import BaseConversationStore, StoreError
from model.transfer import export_feedback, export_json, export_markdown, parse_import
from view.common import flash, short_name, show_flashes, widget_key
from view.markdown import no_remote_images, plain

SHOW_SAVE = "memory_show_save"
PENDING_OVERWRITE = "memory_pending_overwrite"
PENDING_DELETE = "memory_pending_delete"
IMPORT_GENERATION = "memory_import_generation"
LIST_LIMIT = "memory_list_limit"
#: The exports of one conversation: label, writer, file suffix and MIME type.
EXPORTS = (("Markdown", export_markdown, "md", "text/markdown"), ("JSON", export_json, "json", "application/json"))
#: Saved conversations listed at first, and added by each "Show more" (keeps a rerun fast with thousands).
LIST_PAGE = 30


def conversation_sidebar(chat: Chat, store: BaseConversationStore) -> None:
    """The saved-conversations part of the sidebar: New chat, Save, search, the list, import, restore."""
    show_flashes()
    try:
        names = store.names()  # reads the file first, so a bad one is moved aside and reported now
        chat.sync()  # turns saved meanwhile by another tab or Parley instance
    except StoreError as exc:
        st.error(no_remote_images(str(exc)))
        names = []
    for notice in store.pop_notices():
        st.warning(no_remote_images(notice))
    if chat.save_error:
        st.error(no_remote_images(chat.save_error))
    if st.button("New chat", icon="➕", use_container_width=True):
        chat.new()
        st.rerun()
    if st.button("Save", icon="💾", use_container_width=True):
        st.session_state[SHOW_SAVE] = True
    if st.session_state.get(SHOW_SAVE):
        _save_form(chat, store)
    st.header("Saved Conversations")
    query = st.text_input("Search conversations", placeholder="Search names and messages", key="memory_search")
    shown = store.search(query) if query.strip() else names
    if not names:
        st.caption("No saved conversations yet.")
    elif not shown:
        st.caption("No saved conversation matches your search.")
    pending = st.session_state.get(PENDING_DELETE)
    if pending in names:
        _confirm_delete(chat, pending)
    limit = st.session_state.get(LIST_LIMIT, LIST_PAGE)
    for name in shown[:limit]:
        _conversation_popover(chat, store, name)
    if len(shown) > limit and st.button(f"Show more ({len(shown) - limit} older)", key="memory_show_more"):
        st.session_state[LIST_LIMIT] = limit + LIST_PAGE
        st.rerun()
    if names:
        st.download_button(
            "Feedback",
            lambda: export_feedback(store.load_all()),
            file_name="parley-feedback.jsonl",
            mime="application/jsonl",
            key="memory_export_feedback",
            icon="⬇️",
            on_click="ignore",
            use_container_width=True,
            help="Every rated answer as JSON Lines: question, answer, model, rating, comment.",
        )
    _import_section(store)
    _restore_section(store)


def _confirm_delete(chat: Chat, name: str) -> None:
    """The confirmation step of Delete, shown in the sidebar above the list."""
    st.warning(f"Delete “{short_name(name)}”? A backup is kept.")
    yes, no = st.columns(2)
    if yes.button("Yes, delete", key=widget_key("confirm-delete", name), type="primary"):
        st.session_state.pop(PENDING_DELETE, None)
        _act(lambda: chat.delete(name), f"Deleted “{short_name(name)}”.")
    if no.button("Cancel", key=widget_key("cancel-delete", name)):
        st.session_state.pop(PENDING_DELETE, None)
        st.rerun()


def _conversation_popover(chat: Chat, store: BaseConversationStore, name: str) -> None:
    with st.popover(short_name(name), use_container_width=True, key=widget_key("conv", name)):
        st.caption(plain(name))
        if st.button("Load", key=widget_key("load", name)):
            _act(lambda: chat.load(name), f"Loaded “{short_name(name)}”.")
        if st.button("Delete", key=widget_key("delete", name)):
            st.session_state[PENDING_DELETE] = name
            st.rerun()
        new_name = st.text_input("New name", value=name, key=widget_key("new-name", name))
        if st.button("Rename", key=widget_key("rename", name)):
            _act(lambda: chat.rename(name, new_name), f"Renamed to “{short_name(new_name.strip())}”.")
        formats = (
            ("Markdown", export_markdown, "md", "text/markdown"),
            ("JSON", export_json, "json", "application/json"),
        )
        for column, (label, export, suffix, mime) in zip(st.columns(2), formats, strict=True):
            column.download_button(  # the file is made only when the button is clicked
                label,
                functools.partial(_export, export, store, name),
                file_name=f"{_file_stem(name)}.{suffix}",
                mime=mime,
                key=widget_key(f"export-{suffix}", name),
                icon="⬇️",
                on_click="ignore",
            )


def _export(export: Callable[[str, list[Message]], str], store: BaseConversationStore, name: str) -> str:
    """The conversation ``name`` as ``export`` writes it (empty when it is gone)."""
    return export(name, store.get(name) or [])


def _import_section(store: BaseConversationStore) -> None:
    generation = st.session_state.get(IMPORT_GENERATION, 0)
    upload = st.file_uploader(
        "Import conversations",
        type=["json"],
        key=f"memory_import_{generation}",
        help="A JSON file in the conversations.json format, holding one or many conversations.",
    )
    if upload is None:
        return
    try:
        incoming = parse_import(upload.getvalue())
        clashes = [n for n in incoming if store.exists(n)]
    except StoreError as exc:
        st.error(no_remote_images(str(exc)))
        return
    replace = False
    if clashes:
        listed = ", ".join(f"“{short_name(n)}”" for n in clashes)
        choice = st.radio(
            f"Already saved: {listed}. What should happen?",
            ["Keep both", "Replace"],
            key="memory_import_clash",
            horizontal=True,
        )
        replace = choice == "Replace"
    if st.button(f"Import {len(incoming)} conversation(s)", key="memory_import_go"):

        def do_import() -> None:
            saved = store.import_conversations(incoming, replace=replace)
            st.session_state[IMPORT_GENERATION] = generation + 1
            flash(f"Imported {len(saved)} conversation(s): " + ", ".join(f"“{short_name(n)}”" for n in saved) + ".")

        _act(do_import, None)


def _restore_section(store: BaseConversationStore) -> None:
    backups = store.list_backups()
    with st.popover("Restore from backup", icon="🕘", use_container_width=True):
        if not backups:
            st.caption("No backups yet. One is made before each delete, overwrite, rename or restore.")
            return
        chosen = st.selectbox("Backup", backups, format_func=_backup_label, key="memory_backup")
        st.caption("Restoring replaces all saved conversations with the backup's; the current file is backed up first.")
        if st.button("Restore", key="memory_restore"):
            _act(lambda: store.restore_backup(chosen), f"Restored the backup from {_backup_label(chosen)}.")


def _backup_label(path: Path) -> str:
    """``conversations.json.bak-20261121T193000.123456Z`` → ``2026-11-21 19:30:00 UTC``."""
    stamp = path.name.rsplit(".bak-", 1)[-1]
    try:
        return datetime.strptime(stamp, "%Y%m%dT%H%M%S.%fZ").strftime("%Y-%m-%d %H:%M:%S UTC")
    except ValueError:
        return path.name


def _file_stem(name: str) -> str:
    """A download file name from a conversation name: letters, digits, - and _ only, at most 60."""
    stem = re.sub(r"[^\w-]+", "_", name, flags=re.UNICODE).strip("_")[:60]
    return stem or "conversation"


def _save_form(chat: Chat, store: BaseConversationStore) -> None:
    name = st.text_input("Enter a name to save the conversation:", value=chat.name or "", key="memory_save_name")
    pending = st.session_state.get(PENDING_OVERWRITE)
    if st.button("Confirm Save", type="primary"):
        try:
            exists = store.exists(name) and name.strip() != chat.name
        except StoreError as exc:
            st.error(no_remote_images(str(exc)))
            return
        if exists:
            st.session_state[PENDING_OVERWRITE] = pending = name.strip()
        else:
            _save(chat, name)
    if pending is not None:
        st.warning(f"A conversation called “{short_name(pending)}” already exists. Replace it with this one?")
        replace, cancel = st.columns(2)
        if replace.button("Replace", type="primary"):
            _save(chat, pending)
        if cancel.button("Cancel"):
            st.session_state.pop(PENDING_OVERWRITE, None)
            st.rerun()


def _save(chat: Chat, name: str) -> None:
    """Save (or rename: the automatic title goes) the open conversation as ``name``."""
    st.session_state.pop(PENDING_OVERWRITE, None)

    def save() -> None:
        saved = chat.save_as(name)
        st.session_state[SHOW_SAVE] = False
        flash(f"Saved as “{short_name(saved)}”. New messages are saved automatically.")

    _act(save, None)


def _act(action: Callable[[], None], success: str | None) -> None:
    """Run a store action; on success queue ``success`` and rerun, on failure show the error."""
    try:
        action()
    except StoreError as exc:
        st.error(no_remote_images(str(exc)))
        return
    if success:
        flash(success)
    st.rerun()
