"""Sign-in with OpenID Connect through Streamlit's own ``st.login`` / ``st.logout`` / ``st.user``.

Accounts are on when Streamlit's secrets hold an ``[auth]`` section (``redirect_uri``,
``cookie_secret``, ``client_id``, ``client_secret``, ``server_metadata_url``: any OpenID Connect
provider, such as Keycloak, Authentik, Google or Microsoft Entra). With none, the one-person desktop
works as before, with no sign-in. With accounts on, a signed-out visitor sees only the sign-in page,
whichever page they open; a signed-in one sees their name and "Sign out" in the sidebar. Every
sign-in is re-checked with the provider at least every PARLEY_SIGN_IN_RECHECK seconds
(``utils.accounts.SignInCheck``, through the access token ``expose_tokens = "access"`` makes
available), so a person removed there loses access at their next request after that.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st
from streamlit import config

from utils.accounts import SignInCheck, auth_metadata_url
from view.markdown import plain


@dataclass(frozen=True)
class Account:
    """The signed-in person: the provider's subject (``sub``, what owns data), e-mail and name
    for display (either may be empty when the provider does not give it), and whether the provider
    says it checked the e-mail (``email_verified``; True when it does not say)."""

    subject: str
    email: str
    name: str
    email_verified: bool = True


def provider_metadata_url() -> str | None:
    """The provider's discovery document URL when Streamlit's secrets files (its ``secrets.files``
    option) configure ``st.login`` with an ``[auth]`` section (``utils.accounts.auth_metadata_url``);
    None when accounts are off. Without accounts, Streamlit's secrets are never loaded, and only
    Parley's settings read its secrets file (PARLEY_SECRETS_FILE)."""
    return auth_metadata_url(config.get_option("secrets.files") or [])


@st.cache_resource(show_spinner=False)
def _sign_in_check(metadata_url: str, interval: float) -> SignInCheck:
    """One re-check of sign-ins per provider and interval, shared by every session of this process."""
    return SignInCheck(metadata_url, interval)


def signed_in_or_stop(recheck_seconds: Callable[[], float]) -> Account | None:
    """With accounts on, the signed-in person, or the sign-in page and the page stops there: for a
    visitor signed out, with an expired or tampered sign-in cookie, or whose sign-in the provider no
    longer accepts (asked at most every ``recheck_seconds()`` seconds, read only with accounts on).
    With accounts off, None."""
    metadata_url = provider_metadata_url()
    if metadata_url is None:
        return None
    if not st.user.is_logged_in:
        _sign_in_page()
        st.stop()
    access_token = st.user.tokens.get("access")
    if not access_token:
        st.error(
            'Sign-in is configured without `expose_tokens = "access"` in `[auth]`, so Parley cannot '
            "re-check sign-ins with the provider. Add it to `.streamlit/secrets.toml` and restart Parley."
        )
        st.stop()
    if not _sign_in_check(metadata_url, recheck_seconds()).still_valid(str(access_token)):
        _sign_in_page("Your sign-in has ended (it expired, or was withdrawn by your organisation). Sign in again.")
        st.stop()
    subject = str(st.user.get("sub") or "")
    email = str(st.user.get("email") or "")
    verified = st.user.get("email_verified") is not False
    account = Account(subject, email, str(st.user.get("name") or email or subject), verified)
    with st.sidebar:
        st.caption(f"Signed in as **{plain(account.name)}**")
        if st.button("Sign out", key="account_sign_out", icon=":material/logout:"):
            st.logout()
    return account


def _sign_in_page(notice: str = "") -> None:
    st.title("Parley")
    if notice:
        st.warning(notice)
    st.write("Parley is private to the people your organisation lets in. Sign in to chat.")
    if st.button("Sign in", type="primary", key="account_sign_in", icon=":material/login:"):
        st.login()
