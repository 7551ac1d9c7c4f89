"""Sign-in with OpenID Connect: Streamlit's st.login against a real provider on loopback
(oidc-provider-mock), driven in headless Chromium. Accounts off is every other test."""

from __future__ import annotations

import secrets

import httpx
import pytest
from oidc_provider_mock import run_server_in_thread
from playwright.sync_api import expect

from tests.conftest import run_streamlit
from tests.test_browser import TIMEOUT_MS, send, wait_idle
from utils.local_server import free_port


@pytest.fixture
def provider():
    """An OpenID Connect provider on a free loopback port; its base URL."""
    with run_server_in_thread(port=free_port()) as server:
        yield f"http://localhost:{server.server_port}"


@pytest.fixture
def signed_app(app_env, provider, tmp_path, monkeypatch):
    """Parley with accounts on: Streamlit's [auth] secrets naming ``provider``; its URL."""
    port = free_port()
    auth = tmp_path / "auth-secrets.toml"
    auth.write_text(
        "[auth]\n"
        f'redirect_uri = "http://localhost:{port}/oauth2callback"\n'
        f'cookie_secret = "{secrets.token_urlsafe(32)}"\n'
        'client_id = "parley"\n'
        'client_secret = "parley-test-secret"\n'
        f'server_metadata_url = "{provider}/.well-known/openid-configuration"\n'
        'expose_tokens = "access"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")  # the loopback provider speaks plain HTTP
    monkeypatch.setenv("PARLEY_SIGN_IN_RECHECK", "1")
    monkeypatch.setenv("PARLEY_ADMINS", "Ada@Example.com, someone@example.com")
    url, process = run_streamlit(port=port, args=("--secrets.files", str(auth)))
    yield url.replace("127.0.0.1", "localhost")
    process.terminate()
    process.wait(15)


def sign_in(page, app: str, provider: str, sub: str) -> None:
    """Sign in as ``sub`` at the provider's form and wait for the sidebar to say so."""
    page.goto(app, timeout=TIMEOUT_MS)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{provider}/**", timeout=TIMEOUT_MS)
    page.locator("input[name=sub]").fill(sub)
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(f"{app}/**", timeout=TIMEOUT_MS)
    expect(page.get_by_test_id("stSidebar").get_by_text("Signed in as")).to_be_visible(timeout=TIMEOUT_MS)


def expect_only_sign_in(page, app: str, notice: str | None = None) -> None:
    """The memory chat page at ``app`` shows the sign-in page (with ``notice``), not the chat."""
    page.goto(f"{app}/Chatbot_With_Memory", timeout=TIMEOUT_MS)
    if notice:
        expect(page.get_by_text(notice)).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.get_by_test_id("stChatInput")).to_have_count(0)


def test_a_signed_out_visitor_sees_only_sign_in_then_signs_in_and_out(signed_app, provider, browser_page, shots):
    httpx.put(f"{provider}/users/ada", json={"email": "ada@example.com", "name": "Ada Lovelace"}).raise_for_status()
    page = browser_page
    for path in ("", "/Chatbot_With_Memory", "/Knowledge_Base"):  # every page shows only the sign-in
        page.goto(f"{signed_app}{path}", timeout=TIMEOUT_MS)
        expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=TIMEOUT_MS)
        expect(page.get_by_test_id("stChatInput")).to_have_count(0)
    page.screenshot(path=shots / "sign_in.png")
    sign_in(page, signed_app, provider, "ada")
    sidebar = page.get_by_test_id("stSidebar")
    expect(sidebar.get_by_text("Signed in as Ada Lovelace")).to_be_visible(timeout=TIMEOUT_MS)
    page.goto(f"{signed_app}/Chatbot_With_Memory", timeout=TIMEOUT_MS)
    expect(page.get_by_test_id("stChatInput")).to_be_visible(timeout=TIMEOUT_MS)
    wait_idle(page)
    sidebar.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{provider}/**", timeout=TIMEOUT_MS)  # the provider's own sign-out (end_session)
    page.get_by_role("button", name="End session").click()
    page.wait_for_url(f"{signed_app}/**", timeout=TIMEOUT_MS)
    expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.get_by_test_id("stChatInput")).to_have_count(0)


def test_a_tampered_sign_in_cookie_sends_the_visitor_back_to_sign_in(signed_app, provider, browser_page):
    page = browser_page
    sign_in(page, signed_app, provider, "grace")
    context = page.context
    cookies = [c for c in context.cookies() if c["name"].startswith("_streamlit_user")]
    assert cookies, [c["name"] for c in context.cookies()]
    context.clear_cookies()
    context.add_cookies([{**c, "value": c["value"][:-4] + "AAAA"} for c in cookies])
    expect_only_sign_in(page, signed_app)


def test_a_person_whose_tokens_the_provider_revokes_is_sent_back_to_sign_in(signed_app, provider, browser_page):
    page = browser_page
    sign_in(page, signed_app, provider, "linus")
    httpx.post(f"{provider}/users/linus/revoke-tokens").raise_for_status()
    page.wait_for_timeout(1500)  # past PARLEY_SIGN_IN_RECHECK
    expect_only_sign_in(page, signed_app, "Your sign-in has ended")


def test_two_people_signed_in_at_once_each_see_only_their_own_conversations(app_env, signed_app, provider, shots):
    from playwright.sync_api import sync_playwright

    from model.json_store import JsonFileStore
    from model.message import Message
    from tests.conftest import CHROMIUM, CHROMIUM_ARGS
    from tests.test_browser_ux import item

    local = JsonFileStore(app_env)
    local.save("Before accounts", [Message.user("kept for the local owner")])
    local.owned_by("bob").save("Bob's plans", [Message.user("a plan of Bob's")])
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        ada, bob = browser.new_page(), browser.new_page()  # two contexts: two people, two cookies
        for sub in ("ada", "bob"):  # Bob's name is hostile Markdown: shown as text, nothing fetched
            name = "Ada" if sub == "ada" else "Bob ![x](http://127.0.0.1:9/bob.png)"
            httpx.put(f"{provider}/users/{sub}", json={"email": f"{sub}@example.com", "name": name}).raise_for_status()
        sign_in(ada, signed_app, provider, "ada")
        sign_in(bob, signed_app, provider, "bob")
        ada.goto(f"{signed_app}/Chatbot_With_Memory", timeout=TIMEOUT_MS)
        send(ada, "Hello, this is Ada.")
        [adas] = local.owned_by("ada").names()  # saved in Ada's own file, named from her message
        assert "Hello, this is Ada." in [m.content for m in local.owned_by("ada").get(adas)]
        assert local.names() == ["Before accounts"] and local.owned_by("bob").names() == ["Bob's plans"]
        assert [a.subject for a in local.accounts()] == ["ada", "bob"]  # who signed in, for make assign-owner
        bob.goto(f"{signed_app}/Chatbot_With_Memory", timeout=TIMEOUT_MS)
        wait_idle(bob)
        expect(item(bob, "Bob's plans")).to_be_visible(timeout=TIMEOUT_MS)
        expect(item(bob, adas)).to_have_count(0)
        expect(item(bob, "Before accounts")).to_have_count(0)
        expect(item(ada, "Bob's plans")).to_have_count(0)
        bob.goto(f"{signed_app}/Chatbot_With_Memory?conversation={adas}", timeout=TIMEOUT_MS)  # a link to Ada's
        expect(bob.get_by_text("There is no saved conversation called")).to_be_visible(timeout=TIMEOUT_MS)
        expect(bob.get_by_test_id("stChatMessage")).to_have_count(0)  # nothing of Ada's conversation shows
        bob.goto(f"{signed_app}/Admin", timeout=TIMEOUT_MS)  # Bob is not in PARLEY_ADMINS
        expect(bob.get_by_text("Only Parley's admins can see this page")).to_be_visible(timeout=TIMEOUT_MS)
        expect(bob.get_by_test_id("stTable")).to_have_count(0)
        ada.goto(f"{signed_app}/Admin", timeout=TIMEOUT_MS)  # Ada is: who signed in, and how much each keeps
        table = ada.get_by_test_id("stTable")
        expect(table).to_be_visible(timeout=TIMEOUT_MS)
        wait_idle(ada)
        rows = [row.split("\t") for row in table.locator("tbody tr").all_inner_texts()]
        counts = {cells[0].strip(): cells[3].strip() for cells in rows}
        assert counts["ada@example.com"] == "1" and counts["bob@example.com"] == "1", rows
        expect(table.get_by_text("Bob ![x](http://127.0.0.1:9/bob.png)")).to_be_visible()
        expect(table.locator("img")).to_have_count(0)
        ada.screenshot(path=shots / "admin.png")
        browser.close()


def test_a_person_makes_an_api_key_uses_it_over_v1_and_revokes_it(
    app_env, local_server, signed_app, provider, browser_page, shots
):
    import openai

    from model.json_store import JsonFileStore
    from tests.test_api import start_api, stop_api
    from tests.test_api_accounts import accounts_home

    httpx.put(f"{provider}/users/ada", json={"email": "ada@example.com", "name": "Ada"}).raise_for_status()
    page = browser_page
    sign_in(page, signed_app, provider, "ada")
    page.goto(f"{signed_app}/Account", timeout=TIMEOUT_MS)
    page.get_by_label("Key name").fill("my laptop")
    page.get_by_role("button", name="New API key").click()
    shown = page.get_by_test_id("stCode")
    expect(shown).to_contain_text("sk-parley-", timeout=TIMEOUT_MS)
    key = shown.inner_text().strip()
    table = page.get_by_test_id("stTable")
    expect(table).to_contain_text("my laptop")
    expect(table).to_contain_text("never")
    wait_idle(page)
    page.screenshot(path=shots / "account.png")
    page.reload()  # shown once: the key itself is never kept
    expect(page.get_by_test_id("stTable")).to_contain_text("my laptop", timeout=TIMEOUT_MS)
    expect(page.get_by_test_id("stCode")).to_have_count(0)
    assert key not in app_env.parent.joinpath("api_keys.json").read_text(encoding="utf-8")
    api = start_api(app_env.parent, local_server, HOME=str(accounts_home(app_env.parent / "api")))
    try:
        sdk = openai.OpenAI(base_url=f"{api.url}/v1", api_key=key, max_retries=0, timeout=60)
        assert sdk.models.list().data  # the key works over /v1
        with api.client(key) as client:
            assert client.post("/conversations", json={"name": "From my script"}).status_code == 201
        assert JsonFileStore(app_env).owned_by("ada").names() == ["From my script"]  # Ada's, as the page shows
        page.goto(f"{signed_app}/Account", timeout=TIMEOUT_MS)
        expect(page.get_by_test_id("stTable")).not_to_contain_text("never", timeout=TIMEOUT_MS)  # last used
        page.get_by_role("button", name="Revoke").click()
        expect(page.get_by_test_id("stTable")).to_contain_text("revoked", timeout=TIMEOUT_MS)
        with pytest.raises(openai.AuthenticationError):
            sdk.models.list()
    finally:
        stop_api(api)
