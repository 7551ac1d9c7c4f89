"""The Account page: with accounts on, the signed-in person's own API keys for the chat server (made
with "New API key", shown once, named, with when each was last used, and revocable). Without
accounts it says that the chat server takes PARLEY_API_KEYS."""

from __future__ import annotations

import streamlit as st

from model.api_keys import ApiKey, ApiKeys
from model.store import StoreError
from view.accounts import Account
from view.common import conversation_store, settings_or_stop, setup_page
from view.markdown import plain

#: Session-state key of a key made this run, shown once and then forgotten.
_NEW_KEY = "_parley_new_api_key"
#: The keys table's column headings.
NAME, CREATED, LAST_USED, STATE = "Name", "Made (UTC)", "Last used (UTC)", "State"


def render() -> None:
    """Draw the Account page (the sign-in page instead for a visitor signed out)."""
    account = setup_page("Account", "👤")
    st.title("Account")
    if account is None:
        st.info(
            "Sign-in is off, so Parley has one user and no accounts (see Help). The chat server takes "
            "the keys in PARLEY_API_KEYS."
        )
        return
    st.caption(f"Signed in as **{plain(account.name)}** {plain(account.email)}")
    keys = ApiKeys(conversation_store(settings_or_stop()))
    st.subheader("API keys")
    st.write(
        "A key lets a program use the chat server as you: your conversations, nobody else's. "
        "Send it as `Authorization: Bearer <key>`."
    )
    _new_key_form(keys, account)
    _shown_once()
    try:
        mine = keys.of(account.subject)
    except StoreError as exc:
        st.error(plain(str(exc)))
        return
    if not mine:
        st.caption("You have no API keys yet.")
        return
    st.table([_row(k) for k in mine])
    working = [k for k in mine if k.revoked is None]
    if working:
        _revoke_form(keys, account, working)


def _new_key_form(keys: ApiKeys, account: Account) -> None:
    with st.form("new_api_key", clear_on_submit=True, border=False):
        name = st.text_input("Key name", placeholder="e.g. laptop", max_chars=60)
        if st.form_submit_button("New API key", icon=":material/key:"):
            try:
                made, key = keys.make(account.subject, name)
            except StoreError as exc:
                st.error(plain(str(exc)))
                return
            st.session_state[_NEW_KEY] = (made.name, key)


def _shown_once() -> None:
    """The key made on this run, once: it is never stored, so it cannot be shown again."""
    made = st.session_state.pop(_NEW_KEY, None)
    if made is not None:
        st.success(
            f"Your new key **{plain(made[0])}**. Copy it now: Parley keeps only a hash and cannot show it again."
        )
        st.code(made[1], language=None)


def _row(key: ApiKey) -> dict[str, str]:
    state = f"revoked {key.revoked}" if key.revoked else "working"
    return {NAME: plain(key.name), CREATED: key.created, LAST_USED: key.last_used or "never", STATE: state}


def _revoke_form(keys: ApiKeys, account: Account, working: list[ApiKey]) -> None:
    names = {k.id: k.name for k in working}
    chosen = st.selectbox("Key to revoke", list(names), format_func=lambda i: names[i], key="revoke_choice")
    if st.button("Revoke", icon=":material/block:", key="revoke_key") and chosen is not None:
        try:
            keys.revoke(account.subject, chosen)
        except StoreError as exc:
            st.error(plain(str(exc)))
            return
        st.rerun()
