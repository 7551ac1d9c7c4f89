"""The Admin page: with accounts on, the people in PARLEY_ADMINS see everyone who has signed in, how
many conversations and working API keys each keeps (never the conversations themselves), and what is
still kept for the one-person owner from before accounts (``make assign-owner`` gives it to
someone); and they can revoke everyone's API keys of one person at once."""

from __future__ import annotations

import streamlit as st

from model.api_keys import ApiKeys
from model.store import LOCAL_OWNER, AccountRecord, BaseConversationStore, StoreError
from view.common import conversation_store, settings_or_stop, setup_page
from view.markdown import plain

#: The table's column headings.
EMAIL, NAME, SEEN, COUNT, KEYS = "E-mail", "Name", "Last signed in (UTC)", "Conversations", "API keys"


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
    store = conversation_store(settings)
    try:
        people, keys = store.accounts(), ApiKeys(store)
        rows = _people(store, people, keys)
    except StoreError as exc:
        st.error(plain(str(exc)))
        return
    st.caption(
        "Everyone who has signed in, how many conversations and working API keys each keeps. "
        "Conversations stay private."
    )
    st.table(rows)
    if people:
        _revoke_keys(keys, people)


def _revoke_keys(keys: ApiKeys, people: list[AccountRecord]) -> None:
    """Revoke every API key of one person (chosen by e-mail and name, which are shown as text)."""
    names = {a.subject: f"{a.email} ({a.name})" if a.email else a.name or a.subject for a in people}
    chosen = st.selectbox("Person", list(names), format_func=lambda s: names[s], key="admin_person")
    if st.button("Revoke their API keys", icon=":material/block:", key="admin_revoke_keys") and chosen:
        try:
            count = keys.revoke_all(chosen)
        except StoreError as exc:
            st.error(plain(str(exc)))
            return
        st.success(f"Revoked {count} API key{'s' if count != 1 else ''} of {plain(names[chosen])}.")


def _people(store: BaseConversationStore, people: list[AccountRecord], keys: ApiKeys) -> list[dict[str, object]]:
    """One row per person who signed in, then one for the data kept from before accounts. Names and
    e-mails come from the provider: escaped, since the table draws Markdown (no link or image of
    theirs is drawn).

    Raises:
        StoreError: the store cannot be read.
    """
    working: dict[str, int] = {}
    for key in keys.of():
        if key.revoked is None:
            working[key.owner] = working.get(key.owner, 0) + 1
    rows: list[dict[str, object]] = []
    for a in people:
        counts = {COUNT: _count(store, a.subject), KEYS: working.get(a.subject, 0)}
        rows.append({EMAIL: plain(a.email), NAME: plain(a.name), SEEN: a.last_seen, **counts})
    before = "Kept from before accounts (make assign-owner)"
    rows.append({EMAIL: "", NAME: before, SEEN: "", COUNT: _count(store, LOCAL_OWNER), KEYS: 0})
    return rows


def _count(store: BaseConversationStore, owner: str) -> int:
    """How many conversations ``owner`` keeps (one count query on a database)."""
    return store.owned_by(owner).summaries(0, 0)[1]
