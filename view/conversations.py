"""The saved conversations in the sidebar of the memory and knowledge-base pages, as in ChatGPT.

At the top: "New chat" and "Save" (then "Enter a name to save the conversation:" and "Confirm
Save"), "Search conversations" (filters as you type), and the list under "Saved Conversations",
grouped by day (Today, Yesterday, Previous 7 days…), each item showing its time or date. One click
opens a conversation; the open one is highlighted. Names are shortened keeping their end, so "… (2)"
still tells look-alikes apart; knowledge-base chats are marked 📚 and open on the Knowledge Base page.
Beside each item a "⋯" popover holds "Rename", the Markdown and JSON exports, and "Delete", which
asks "Yes, delete" / "Cancel" in a dialog; the popover closes after each action.

Each open conversation has its own URL (``?conversation=<name>``): a reload or a bookmark opens it
again, and an unknown name says so. A conversation whose reply is still being written when the
user opens another keeps writing in the background (its Chat is set aside in the session) and is
shown with its reply on return.

At the bottom (``conversation_extras``): "Feedback" (rated answers as JSON Lines), "Import
conversations" and "Restore from backup".
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import streamlit as st

from controller.chat import Chat
from controller.errors import ChatError
from model.message import Message
from model.store import BaseConversationStore, StoreError, Summary
from model.transfer import export_feedback, export_json, export_markdown, parse_import
from view.common import flash, short_name, show_flashes, widget_key
from view.markdown import no_remote_images, plain
from view.style import CONVERSATION_PREFIX

SHOW_SAVE = "memory_show_save"
PENDING_OVERWRITE = "memory_pending_overwrite"
PENDING_DELETE = "memory_pending_delete"
IMPORT_GENERATION = "memory_import_generation"
LIST_LIMIT = "memory_list_limit"
BACKGROUND = "background_chats"  # conversation name → Chat still writing a reply there
SWITCH = "switch_page_to"
URL_SEEN = "url_conversation_seen"
#: The conversation URL parameter.
URL_PARAM = "conversation"
#: Saved conversations listed at first, and added by each "Show more" (keeps a rerun fast with thousands).
LIST_PAGE = 30
#: Longest name shown in the list, in characters: what fits on the open (bordered) item at the
#: sidebar's default width, so that "… (2)" is never cut off by the button itself.
LIST_NAME_CHARS = 18
#: The page each kind of conversation opens on.
PAGES = {"memory": "pages/2_Chatbot_With_Memory.py", "kb": "pages/3_Knowledge_Base.py"}
#: The end of a name that tells look-alikes apart: " (2)", " (imported 3)".
_SUFFIX = re.compile(r"\s\((?:imported )?\d+\)$|\s\(imported\)$")


def list_label(name: str, limit: int = LIST_NAME_CHARS) -> str:
    """``name`` shortened to ``limit`` characters with "…" in the middle when needed, keeping a
    " (2)"-like end so that look-alike names stay apart; plain text (Markdown escaped)."""
    if len(name) <= limit:
        return plain(name)
    match = _SUFFIX.search(name)
    end = match.group(0) if match else ""
    return plain(name[: max(limit - len(end) - 1, 4)].rstrip() + "…" + end)


def _zone() -> ZoneInfo | None:
    try:
        return ZoneInfo(st.context.timezone) if st.context.timezone else None
    except (ZoneInfoNotFoundError, ValueError):
        return None


def when_of(stamp: str, today: date, zone: ZoneInfo | None) -> tuple[str, str]:
    """(group, short time) of an ISO 8601 timestamp seen from ``today`` in ``zone``: ("Today",
    "14:05"), ("Yesterday", "09:30"), ("Previous 7 days", "Mon"), ("Previous 30 days", "12 Nov"),
    ("November 2025", "12 Nov"); ("Older", "") for no time."""
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return "Older", ""
    local = moment.astimezone(zone) if zone is not None else moment
    days = (today - local.date()).days
    if days <= 0:
        return "Today", local.strftime("%H:%M")
    if days == 1:
        return "Yesterday", local.strftime("%H:%M")
    if days < 7:
        return "Previous 7 days", local.strftime("%a")
    if days < 30:
        return "Previous 30 days", local.strftime("%d %b").lstrip("0")
    return local.strftime("%B %Y"), local.strftime("%d %b").lstrip("0")


def conversation_list(chat_key: str, store: BaseConversationStore, here: str) -> None:
    """The top of the sidebar: notices, "New chat" and "Save", search, and the grouped list.

    Args:
        chat_key: the session key of this page's Chat.
        store: the conversation store.
        here: this page's kind, ``memory`` or ``kb`` (a chat of the other kind opens on its page).
    """
    show_flashes()
    chat: Chat = st.session_state[chat_key]
    notices = st.container()  # filled once the store was read (a bad file is moved aside then)
    with st.container(horizontal=True, gap="small"):
        st.button("New chat", icon="➕", key="memory_new_chat", on_click=_new_chat, args=(chat_key,))
        if st.button("Save", icon="💾", key="memory_save"):
            st.session_state[SHOW_SAVE] = True
    if st.session_state.get(SHOW_SAVE):
        _save_form(chat, store)
    st.subheader("Saved Conversations")
    query = st.text_input(
        "Search conversations", placeholder="Search names and messages", key="memory_search", live=True
    )
    try:
        chat.sync()  # turns saved meanwhile by another tab or Parley instance
        shown, total = _listed(store, query, st.session_state.get(LIST_LIMIT, LIST_PAGE))
    except StoreError as exc:
        notices.error(no_remote_images(str(exc)))
        shown, total = [], 0
    for notice in store.pop_notices():
        notices.warning(no_remote_images(notice))
    if chat.save_error:
        notices.error(no_remote_images(chat.save_error))
    if not shown:
        st.caption("No saved conversation matches your search." if query.strip() else "No saved conversations yet.")
    _items(chat, chat_key, store, here, shown)
    if total > len(shown) and st.button(f"Show more ({total - len(shown)} older)", key="memory_show_more"):
        st.session_state[LIST_LIMIT] = len(shown) + LIST_PAGE
        st.rerun()
    pending = st.session_state.get(PENDING_DELETE)
    if pending is not None:
        _confirm_delete(chat_key, pending)


def _listed(store: BaseConversationStore, query: str, limit: int) -> tuple[list[Summary], int]:
    """The first ``limit`` conversations matching ``query`` (all for a blank one), and how many match.

    Raises:
        StoreError: the store cannot be read.
    """
    if not query.strip():
        return store.summaries(0, limit)
    names = store.search(query)
    found = [store.summary(name) for name in names[:limit]]
    return [s for s in found if s is not None], len(names)


def _items(chat: Chat, chat_key: str, store: BaseConversationStore, here: str, shown: list[Summary]) -> None:
    """The list items, under a heading per day group."""
    zone = _zone()
    today = datetime.now(zone).date()
    group = None
    for summary in shown:
        heading, when = when_of(summary.last_activity, today, zone)
        if heading != group:
            st.caption(heading)
            group = heading
        kind = "kb" if summary.knowledge_base else "memory"
        mark = "📚 " if kind == "kb" else ""
        with st.container(horizontal=True, gap="small", vertical_alignment="center", wrap=False):
            st.button(
                f"{mark}{list_label(summary.name)}",
                key=widget_key(CONVERSATION_PREFIX, summary.name),
                type="secondary" if summary.name == chat.name else "tertiary",
                width="stretch",
                help=_item_help(summary, kind),
                on_click=_open,
                args=(chat_key, store, summary.name, here, kind),
            )
            if when:
                st.caption(when, width="content")
            _menu(chat_key, store, summary.name)


def _item_help(summary: Summary, kind: str) -> str:
    where = f" · knowledge base “{summary.knowledge_base}”" if kind == "kb" else ""
    return f"{plain(summary.name)}  \n{summary.messages} messages{plain(where)}"


def _menu(chat_key: str, store: BaseConversationStore, name: str) -> None:
    """The "⋯" popover of one conversation: Rename, the exports and Delete; closed after each."""
    key = widget_key("conv-menu", name)
    with st.popover("⋯", key=key, on_change="rerun", type="tertiary", help=f"Rename, export or delete “{plain(name)}”"):
        st.caption(plain(name))
        name_key = widget_key("new-name", name)
        st.text_input("New name", value=name, key=name_key)
        st.button("Rename", key=widget_key("rename", name), on_click=_rename, args=(chat_key, name, name_key, key))
        for label, export, suffix, mime in EXPORTS:
            st.download_button(  # the file is made only when the button is clicked
                f"Export {label}",
                functools.partial(_export, export, store, name),
                file_name=f"{_file_stem(name)}.{suffix}",
                mime=mime,
                key=widget_key(f"export-{suffix}", name),
                icon="⬇️",
                on_click=_close,
                args=(key,),
            )
        st.button("Delete", key=widget_key("delete", name), icon="🗑️", on_click=_ask_delete, args=(name, key))


#: The exports of one conversation: label, writer, file suffix and MIME type.
EXPORTS = (("Markdown", export_markdown, "md", "text/markdown"), ("JSON", export_json, "json", "application/json"))


def _close(menu_key: str) -> None:
    st.session_state[menu_key] = False


def _ask_delete(name: str, menu_key: str) -> None:
    _close(menu_key)
    st.session_state[PENDING_DELETE] = name


def _rename(chat_key: str, old: str, name_key: str, menu_key: str) -> None:
    """on_click of "Rename": rename to the text in ``name_key``, follow it in the URL when it is the
    open one, close the menu."""
    _close(menu_key)
    chat: Chat = st.session_state[chat_key]
    try:
        renamed = chat.rename(old, st.session_state.get(name_key, old))
    except StoreError as exc:
        flash(str(exc), "error")
        return
    if chat.name == renamed:
        st.query_params[URL_PARAM] = renamed
        st.session_state[URL_SEEN] = renamed
    flash(f"Renamed to “{short_name(renamed)}”.")


@st.dialog("Delete conversation", on_dismiss=lambda: st.session_state.pop(PENDING_DELETE, None))
def _confirm_delete(chat_key: str, name: str) -> None:
    """The dialog that asks before Delete (a backup is kept)."""
    st.write(f"Delete “{short_name(name)}”? A backup is kept.")
    with st.container(horizontal=True, gap="small"):
        yes = st.button("Yes, delete", key=widget_key("confirm-delete", name), type="primary")
        no = st.button("Cancel", key=widget_key("cancel-delete", name))
    if not (yes or no):
        return
    st.session_state.pop(PENDING_DELETE, None)
    if yes:
        chat: Chat = st.session_state[chat_key]
        try:
            chat.delete(name)
        except StoreError as exc:
            flash(str(exc), "error")
        else:
            flash(f"Deleted “{short_name(name)}”.")
            if chat.name is None and st.query_params.get(URL_PARAM) == name:
                del st.query_params[URL_PARAM]
    st.rerun()


def _set_aside(chat_key: str, store: BaseConversationStore) -> Chat:
    """This page's Chat, ready for another conversation: one still writing a reply is set aside
    (it goes on, and is saved) and a fresh Chat with the same engine takes its place."""
    chat: Chat = st.session_state[chat_key]
    if not chat.replying:
        return chat
    background: dict[str, Chat] = st.session_state.setdefault(BACKGROUND, {})
    background[chat.name or ""] = chat
    fresh = st.session_state[chat_key] = Chat(chat.engine, store, auto_title=True)
    return fresh


def _new_chat(chat_key: str) -> None:
    """on_click of "New chat"."""
    chat: Chat = st.session_state[chat_key]
    store = chat.store
    chat = _set_aside(chat_key, store) if store is not None else chat
    if not chat.replying:
        chat.new()
    st.query_params.pop(URL_PARAM, None)


def _open(chat_key: str, store: BaseConversationStore, name: str, here: str, kind: str) -> None:
    """on_click of a list item: open ``name`` here, or on its own page for the other kind."""
    if kind != here:
        st.session_state[SWITCH] = (PAGES[kind], name)
        return
    open_conversation(chat_key, store, name)


def open_conversation(chat_key: str, store: BaseConversationStore, name: str) -> bool:
    """Make ``name`` this page's conversation (its Chat set aside in the background, if it is still
    writing a reply there); the URL follows. Returns False (with a notice) when it cannot be opened."""
    current: Chat = st.session_state[chat_key]
    if current.name == name:
        return True
    background: dict[str, Chat] = st.session_state.setdefault(BACKGROUND, {})
    for done in [n for n, c in background.items() if not c.replying and n != name]:
        del background[done]  # their replies are saved: open them from the store
    chat = _set_aside(chat_key, store)
    kept = background.pop(name, None)
    if kept is not None:
        st.session_state[chat_key] = kept
    else:
        try:
            chat.load(name)
        except (StoreError, ChatError) as exc:
            flash(str(exc), "error")
            return False
    st.query_params[URL_PARAM] = name
    st.session_state[URL_SEEN] = name
    return True


def follow_url(chat_key: str, store: BaseConversationStore) -> None:
    """Open the conversation the URL names (a reload, a bookmark, a link from the other page), once
    per name; then keep the URL on the open conversation. An unknown name is said in the sidebar."""
    target = st.session_state.pop(SWITCH, None)
    if target is not None:
        st.switch_page(target[0], query_params={URL_PARAM: target[1]})
    chat: Chat = st.session_state[chat_key]
    wanted = st.query_params.get(URL_PARAM)
    if wanted and wanted != chat.name and wanted != st.session_state.get(URL_SEEN):
        st.session_state[URL_SEEN] = wanted
        if not store.exists(wanted):
            flash(
                f"There is no saved conversation called “{short_name(wanted)}”; it may have been renamed or deleted.",
                "warning",
            )
        elif open_conversation(chat_key, store, wanted):
            return
    chat = st.session_state[chat_key]
    if chat.name and st.query_params.get(URL_PARAM) != chat.name:
        st.query_params[URL_PARAM] = chat.name
        st.session_state[URL_SEEN] = chat.name
    elif not chat.name and URL_PARAM in st.query_params:
        del st.query_params[URL_PARAM]


def conversation_extras(store: BaseConversationStore) -> None:
    """The bottom of the sidebar: "Feedback", "Import conversations" and "Restore from backup"."""
    st.download_button(
        "Feedback",
        lambda: export_feedback(store.load_all()),
        file_name="parley-feedback.jsonl",
        mime="application/jsonl",
        key="memory_export_feedback",
        icon="⬇️",
        on_click="ignore",
        use_container_width=True,
        help="Download rated answers (JSON Lines): question, answer, model, rating and comment of each.",
    )
    _import_section(store)
    _restore_section(store)


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
        st.query_params[URL_PARAM] = saved
        st.session_state[URL_SEEN] = saved
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
