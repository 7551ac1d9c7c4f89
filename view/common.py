"""Shared view helpers: page setup, settings, the local server, the store and the active model."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import streamlit as st
from pydantic import ValidationError

from model.message import Source
from model.store import LOCAL_OWNER, BaseConversationStore, StoreError
from model.stores import open_store
from settings import PROVIDER_LABELS, Settings, load_settings
from utils.local_models import PickedModelServer
from utils.local_server import LOCAL_MODEL_ALIAS, LocalServer, LocalServerError, will_tune
from utils.providers import LLMConfig
from utils.thread_tuning import TUNING_NOTICE
from view.accounts import Account, signed_in_or_stop
from view.markdown import no_remote_images, plain

#: Session-state key of the owner of this tab's data (``setup_page`` sets it on every run).
_OWNER = "_parley_owner"
#: Session-state key of the account this tab has noted as signed in (``_record``).
_RECORDED = "_parley_account_recorded"
#: Longest conversation name shown in full in the sidebar, in characters.
NAME_DISPLAY_LIMIT = 40


def setup_page(title: str, icon: str = "💬") -> Account | None:
    """Set the browser tab's title and icon and the wide layout; with accounts on, show a signed-out
    visitor the sign-in page instead and stop (``view.accounts``).

    Returns:
        the signed-in person with accounts on, else None.
    """
    st.set_page_config(page_title=f"{title} · Parley", page_icon=icon, layout="wide")
    account = signed_in_or_stop(lambda: settings_or_stop().parley_sign_in_recheck)
    st.session_state[_OWNER] = account.subject if account is not None else LOCAL_OWNER
    if account is not None and st.session_state.get(_RECORDED) != account.subject:
        _record(account)
    return account


def _record(account: Account) -> None:
    """Note in the store that ``account`` signed in (once per tab: ``make assign-owner`` finds people
    by e-mail there); a store that cannot be written now is tried again on the next run."""
    store = open_store_or_none(settings_or_stop())
    if store is None:
        return
    when = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    with contextlib.suppress(StoreError):
        store.record_account(account.subject, account.email, account.name, when)
        st.session_state[_RECORDED] = account.subject


def settings_or_stop() -> Settings:
    """Return the settings, or show what is wrong with them and stop the page."""
    try:
        return load_settings()
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        st.error(
            f"Parley's configuration has a mistake: {problems}. Fix it in the environment or .streamlit/secrets.toml."
        )
        st.stop()


@st.cache_resource(show_spinner=False)
def _local_server(
    port: int | None, model_path: Path | None, context_window: int, start_timeout: float, threads: int | None
) -> LocalServer:
    """One local model server per configuration, shared by every rerun, page and tab."""
    return LocalServer.ensure(port, model_path, context_window, start_timeout, threads)


@st.cache_resource(show_spinner=False)
def _shared_store(location: str) -> BaseConversationStore:
    """The store at ``location``, shared by all tabs (every backend is thread-safe)."""
    return open_store(location)


@st.cache_resource(show_spinner=False)
def _owned_store(location: str, owner: str) -> BaseConversationStore:
    """``owner``'s part of the store at ``location`` (its connections shared), one per owner."""
    return _shared_store(location).owned_by(owner)


def _store(location: str) -> BaseConversationStore:
    """The part of the store at ``location`` that belongs to the person using this tab: the signed-in
    account's with accounts on (``setup_page`` notes it), else the local owner's.

    Raises:
        StoreError: the store cannot be opened.
    """
    return _owned_store(location, st.session_state.get(_OWNER, LOCAL_OWNER))


def open_store_or_none(settings: Settings) -> BaseConversationStore | None:
    """The conversation store, or None when it cannot be opened (for what can do without it, such
    as remembering settings; the pages that need it say why with ``conversation_store``). Tried once
    per tab, so an unreachable database does not slow every rerun."""
    if st.session_state.get("_store_unavailable"):
        return None
    try:
        return _store(settings.conversations_location)
    except StoreError:
        st.session_state["_store_unavailable"] = True
        return None


def conversation_store(settings: Settings) -> BaseConversationStore:
    """The conversation store that CONVERSATIONS_URL (or CONVERSATIONS_FILE) names, opened once.

    A database that cannot be reached is shown with ``st.error`` (its URL, password masked) and
    stops the page: Parley never falls back to another store silently.
    """
    try:
        return _store(settings.conversations_location)
    except StoreError as exc:
        st.error(no_remote_images(str(exc)))
        st.stop()


@st.cache_resource(show_spinner=False)
def picked_model_server() -> PickedModelServer:
    """The one server for a model picked from LOCAL_MODELS_DIR, shared by every tab."""
    return PickedModelServer()


def local_model_name() -> str:
    """The model id the local provider answers with now: the picked GGUF's name without
    ``.gguf``, or the bundled model's alias."""
    picked = picked_model_server()
    return picked.path.stem if picked.path is not None else LOCAL_MODEL_ALIAS


def starting_notice(usual: str, model_path: Path | None, threads: int | None) -> str:
    """What a spinner says while a local model server starts: ``usual``, or "Tuning the local model
    for this machine…" when this start first measures the machine's best thread count."""
    return TUNING_NOTICE if will_tune(model_path, threads) else usual


def local_server_or_stop(settings: Settings) -> LocalServer:
    """The local model server in use: the picked model's, or the shared bundled one (started
    with a spinner the first time).

    On a missing model or a server that does not start, shows ``st.error`` with what to do and
    stops the page.
    """
    picked = picked_model_server()
    if picked.server is not None:
        return picked.server
    try:
        usual = "Starting the local model (SmolLM2-135M-Instruct)… this takes a few seconds the first time."
        with st.spinner(starting_notice(usual, settings.local_model_path, settings.local_llm_threads)):
            return _local_server(
                settings.local_llm_port,
                settings.local_model_path,
                settings.local_context_window,
                settings.local_server_start_timeout,
                settings.local_llm_threads,
            )
    except LocalServerError as exc:
        st.error(no_remote_images(str(exc)))
        st.stop()


def source_list(sources: Sequence[Source]) -> None:
    """Retrieved chunks as the knowledge-base page shows them: number, file, page or row, similarity,
    text; web pages with their URL (as text: nothing is fetched until the user opens it), and the
    pages skipped after the used ones, each with "skipped: <reason>"."""
    used = [s for s in sources if not s.skipped]
    for number, source in enumerate(used, start=1):
        where = f" · {plain(source.where)}" if source.where else ""
        st.markdown(f"**{number}. {plain(source.file_name)}**{where} · similarity {source.score:.2f}")
        if source.url:
            st.caption(plain(source.url))
        st.text(source.text[:1500])
    for source in sources:
        if source.skipped:
            st.markdown(f"**{plain(source.file_name)}** · {plain(source.url)} · skipped: {plain(source.skipped)}")


def provider_caption(config: LLMConfig) -> str:
    """One line naming the active provider and model, for the sidebar and Home."""
    return f"**Provider:** {PROVIDER_LABELS.get(config.provider, config.provider)}  \n**Model:** `{config.model}`"


def short_name(name: str) -> str:
    """``name`` cut to NAME_DISPLAY_LIMIT characters with an ellipsis, as plain text (escaped
    Markdown), for labels and sentences."""
    return plain(name if len(name) <= NAME_DISPLAY_LIMIT else name[: NAME_DISPLAY_LIMIT - 1] + "…")


def widget_key(prefix: str, name: str) -> str:
    """A widget key that is unique and safe whatever ``name`` holds (SHA-1 of its UTF-8)."""
    return f"{prefix}-{hashlib.sha1(name.encode('utf-8')).hexdigest()}"


def flash(text: str, kind: str = "success") -> None:
    """Queue a message to show on the next rerun (for actions followed by ``st.rerun``)."""
    st.session_state.setdefault("_flash", []).append((kind, text))


def show_flashes() -> None:
    """Show and clear the queued messages."""
    for kind, text in st.session_state.pop("_flash", []):
        getattr(st, kind)(no_remote_images(text))
