"""The Knowledge Base page: make knowledge bases from your files and chat with them, with sources.

Sidebar: the saved conversations at the top, as on the memory page; model settings; the knowledge
base (choose, create, delete); its files (upload several, add a server folder, remove one) with
progress while indexing; and the retrieval settings (mode, top k, similarity threshold) under "Advanced".
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import streamlit as st

from controller.chat import Chat
from controller.engines import KnowledgeEngine
from settings import Settings
from utils.documents import SUPPORTED_TYPES
from utils.embeddings import EmbeddingModelError, build_embed_model
from utils.knowledge_bases import AddReport, KnowledgeBase, KnowledgeBaseError, KnowledgeBaseStore, open_knowledge_bases
from view.chat import chat_area, tab_chat, take_action
from view.common import conversation_store, flash, settings_or_stop, setup_page, show_flashes, widget_key
from view.conversations import conversation_extras, conversation_list, follow_url
from view.markdown import no_remote_images, plain
from view.model_settings import model_settings

SESSION_KEY = "kb_chat"
CHOSEN = "kb_chosen"
PENDING_KB_DELETE = "kb_pending_delete"
UPLOAD_GENERATION = "kb_upload_generation"


def knowledge_bases(settings: Settings) -> KnowledgeBaseStore:
    """The knowledge-base store the settings name, shared by all tabs (the embedding model loads once).
    A store that cannot be opened is said on the page, which stops there."""
    try:
        return _knowledge_bases(
            settings.knowledge_base_location, settings.knowledge_base_dir, settings.conversations_location
        )
    except KnowledgeBaseError as exc:
        st.error(no_remote_images(str(exc)))
        st.stop()
        raise  # st.stop() raises; this keeps the type checker sure


@st.cache_resource(show_spinner=False)
def _knowledge_bases(url: str | None, folder: Path, conversations: str) -> KnowledgeBaseStore:
    return open_knowledge_bases(url, folder, conversations, build_embed_model)


def render(engine: type[KnowledgeEngine]) -> None:
    """Draw the page; ``engine.from_defaults(config, knowledge base, top k, threshold, mode)`` answers each turn."""
    setup_page("Knowledge Base", "📚")
    settings = settings_or_stop()
    store = conversation_store(settings)
    kbs = knowledge_bases(settings)
    with st.sidebar:
        top = st.container()
        config = model_settings(settings)
    tab_chat(SESSION_KEY, engine.from_defaults(config, None), store)
    follow_url(SESSION_KEY, store)
    _follow_conversation(st.session_state[SESSION_KEY])
    st.title("Knowledge Base")
    with st.sidebar:
        show_flashes()
        try:
            kb = _knowledge_base_section(kbs)
        except (EmbeddingModelError, KnowledgeBaseError) as exc:
            st.error(no_remote_images(str(exc)))
            st.stop()
        top_k, threshold, mode = _retrieval_settings() if kb is not None else (3, 0.3, "hybrid")
    chat = tab_chat(SESSION_KEY, engine.from_defaults(config, kb, top_k=top_k, threshold=threshold, mode=mode), store)
    take_action(chat, settings, "kb")
    with top:
        conversation_list(SESSION_KEY, store, "kb")
    with st.sidebar:
        conversation_extras(store)
    if kb is None:
        st.info("Create or choose a knowledge base in the sidebar, add your files, then ask about them.")
    else:
        st.caption(f"Answering from **{plain(kb.name)}**: {len(kb.files)} file(s), {kb.chunk_count} chunk(s).")
    if chat.save_error:  # the last auto-save failed: said above the chat until a save works
        st.error(no_remote_images(chat.save_error))
    chat_area(chat, config, settings, page="kb")


def _follow_conversation(chat: Chat) -> None:
    """When another conversation was opened, choose the knowledge base it was held with."""
    if st.session_state.get("kb_conversation") == chat.name:
        return
    st.session_state["kb_conversation"] = chat.name
    used = next((m.knowledge_base for m in chat.messages if m.knowledge_base), None)
    if used is not None:
        st.session_state[CHOSEN] = used
        st.session_state.pop("kb_select", None)


def _knowledge_base_section(kbs: KnowledgeBaseStore) -> KnowledgeBase | None:
    """Choose, create and delete knowledge bases, and add files; returns the chosen one, or None."""
    st.header("Knowledge base")
    if kbs.notice:
        st.caption(no_remote_images(kbs.notice))
    names = kbs.names()
    chosen = st.session_state.get(CHOSEN)
    if chosen not in names:
        chosen = names[0] if names else None
    if names:
        chosen = st.selectbox("Knowledge base", names, index=names.index(chosen), key="kb_select")
    st.session_state[CHOSEN] = chosen
    with st.spinner("Loading the knowledge base…"):
        kb = kbs.open(chosen) if chosen else None
    _create_popover(kbs)
    if kb is None:
        return None
    _files_section(kb)
    _delete_section(kbs, kb)
    return kb


def _create_popover(kbs: KnowledgeBaseStore) -> None:
    with st.popover("New knowledge base", icon="➕", use_container_width=True):
        new_name = st.text_input("Name of the new knowledge base", key="kb_new_name")
        if st.button("Create", key="kb_create"):
            try:
                with st.spinner("Loading the embedding model…"):
                    created = kbs.create(new_name)
            except KnowledgeBaseError as exc:
                st.error(no_remote_images(str(exc)))
            else:
                st.session_state[CHOSEN] = created.name
                flash(f"Created the knowledge base “{plain(created.name)}”.")
                st.rerun()


#: The "Retrieval" choices on the page, by ``utils.knowledge_bases.RETRIEVAL_MODES`` id.
RETRIEVAL_LABELS = {"hybrid": "Hybrid", "vector": "Vector", "keyword": "Keyword"}


def _retrieval_settings() -> tuple[int, float, str]:
    """The "Retrieval" mode, "Top k chunks" and "Similarity threshold", in an "Advanced" expander;
    returns (top k, threshold, mode id)."""
    with st.expander("Advanced"):
        mode = st.radio(
            "Retrieval",
            list(RETRIEVAL_LABELS),
            format_func=RETRIEVAL_LABELS.__getitem__,
            key="kb_mode",
            horizontal=True,
            help="Hybrid finds passages by meaning and by the question's words together; Vector by "
            "meaning only; Keyword by words only (BM25).",
        )
        top_k = st.slider(
            "Top k chunks", 1, 10, 3, key="kb_top_k", help="How many passages of your files each answer is given."
        )
        threshold = st.slider(
            "Similarity threshold",
            0.0,
            1.0,
            0.3,
            0.05,
            key="kb_threshold",
            help="Passages less similar to the question than this are not used (cosine similarity, 0 to 1), "
            "in every retrieval mode.",
        )
    return top_k, threshold, str(mode)


def _delete_section(kbs: KnowledgeBaseStore, kb: KnowledgeBase) -> None:
    if st.session_state.get(PENDING_KB_DELETE) == kb.name:
        st.warning(f"Delete the knowledge base “{plain(kb.name)}” and its index? Your original files are not touched.")
        yes, no = st.columns(2)
        if yes.button("Yes, delete it", type="primary", key="kb_confirm_delete"):
            kbs.delete(kb.name)
            st.session_state.pop(PENDING_KB_DELETE, None)
            flash(f"Deleted the knowledge base “{plain(kb.name)}”.")
            st.rerun()
        if no.button("Cancel", key="kb_cancel_delete"):
            st.session_state.pop(PENDING_KB_DELETE, None)
            st.rerun()
    elif st.button("Delete knowledge base", key="kb_delete"):
        st.session_state[PENDING_KB_DELETE] = kb.name
        st.rerun()


def _files_section(kb: KnowledgeBase) -> None:
    generation = st.session_state.get(UPLOAD_GENERATION, 0)
    uploads = st.file_uploader(
        "Add files",
        type=[t.lstrip(".") for t in SUPPORTED_TYPES],
        accept_multiple_files=True,
        key=f"kb_upload_{generation}",
    )
    if uploads and st.button(f"Index {len(uploads)} file(s)", type="primary", key="kb_index"):
        _index(lambda progress: kb.add_files([(u.name, u.getvalue()) for u in uploads], progress))
        st.session_state[UPLOAD_GENERATION] = generation + 1
        st.rerun()
    folder = st.text_input("Or a folder on this machine", placeholder="/home/me/notes", key="kb_folder")
    if st.button("Add folder", key="kb_add_folder", disabled=not folder.strip()):
        _index(lambda progress: kb.add_folder(Path(folder.strip()).expanduser(), progress))
        st.rerun()
    with st.expander(f"Files ({len(kb.files)}, {kb.chunk_count} chunks)"):
        if not kb.files:
            st.caption("No files yet.")
        for name, entry in sorted(kb.files.items()):
            left, right = st.columns([3, 1])
            left.markdown(f"{plain(name)}  \n:gray[{entry.chunks} chunk(s)]")
            if right.button("Remove", key=widget_key("kb-remove", name)):
                kb.remove_file(name)
                flash(f"Removed {plain(name)}.")
                st.rerun()


def _index(run: Callable[[Callable[[int, int, int], None]], AddReport]) -> None:
    """Run an indexing action with a progress bar, then queue what happened for after the rerun."""
    bar = st.progress(0.0, text="Indexing…")

    def progress(done: int, total: int, chunks: int) -> None:
        bar.progress(done / max(total, 1), text=f"Indexed {done} of {total} file(s), {chunks} chunk(s)")

    try:
        with st.spinner("Embedding… the first time also loads the embedding model."):
            report = run(progress)
    except KnowledgeBaseError as exc:
        flash(str(exc), "error")
        return
    parts = [f"Indexed {len(report.indexed)} file(s) into {report.chunks} chunk(s)."]
    if report.unchanged:
        parts.append(f"Unchanged, not embedded again: {', '.join(plain(n) for n in report.unchanged)}.")
    flash(" ".join(parts))
    for problem in report.problems:
        flash(problem, "error")
