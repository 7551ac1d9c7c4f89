"""The Admin page: with accounts on, the people in PARLEY_ADMINS see everyone who has signed in and
how many conversations each keeps (never the conversations themselves), and what is still kept for
the one-person owner from before accounts (``make assign-owner`` gives it to someone)."""

from __future__ import annotations

import streamlit as st

from model.store import LOCAL_OWNER, BaseConversationStore, StoreError
from view.common import conversation_store, settings_or_stop, setup_page
from view.markdown import plain

#: The table's column headings.
EMAIL, NAME, SEEN, COUNT = "E-mail", "Name", "Last signed in (UTC)", "Conversations"


def render() -> None:
    """Draw the Admin page (the sign-in page instead for a visitor signed out)."""
    account = setup_page("Admin", "🛡️")
    st.title("Admin")
    if account is None:
        st.info("The Admin page is for Parley with sign-in on (see Help); without it, Parley has one user.")
        return
    settings = settings_or_stop()
    if not account.email_verified or account.email.strip().casefold() not in settings.admins:
        st.warning("Only Parley's admins can see this page (their e-mails are in PARLEY_ADMINS).")
        return
    try:
        rows = _people(conversation_store(settings))
    except StoreError as exc:
        st.error(plain(str(exc)))
        return
    st.caption("Everyone who has signed in, and how many conversations each keeps. Conversations stay private.")
    st.table(rows)


def _people(store: BaseConversationStore) -> list[dict[str, object]]:
    """One row per person who signed in, then one for the data kept from before accounts. Names and
    e-mails come from the provider: escaped, since the table draws Markdown (no link or image of
    theirs is drawn).

    Raises:
        StoreError: the store cannot be read.
    """
    rows: list[dict[str, object]] = []
    for a in store.accounts():
        rows.append({EMAIL: plain(a.email), NAME: plain(a.name), SEEN: a.last_seen, COUNT: _count(store, a.subject)})
    before = "Kept from before accounts (make assign-owner)"
    rows.append({EMAIL: "", NAME: before, SEEN: "", COUNT: _count(store, LOCAL_OWNER)})
    return rows


def _count(store: BaseConversationStore, owner: str) -> int:
    """How many conversations ``owner`` keeps (one count query on a database)."""
    return store.owned_by(owner).summaries(0, 0)[1]
