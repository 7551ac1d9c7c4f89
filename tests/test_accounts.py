"""Re-checking sign-ins with the provider (utils.accounts.SignInCheck), against a real OpenID Connect
provider on loopback (oidc-provider-mock) and its real tokens."""

from __future__ import annotations

import json
import logging
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from oidc_provider_mock import run_server_in_thread

from utils.accounts import SignInCheck
from utils.local_server import free_port

REDIRECT = "http://localhost:8501/oauth2callback"


@pytest.fixture(scope="module")
def provider():
    """An OpenID Connect provider on a free loopback port; its base URL."""
    with run_server_in_thread(port=free_port()) as server:
        yield f"http://localhost:{server.server_port}"


def access_token(provider: str, sub: str) -> str:
    """An access token for ``sub``, by the authorization code flow a browser would go through."""
    with httpx.Client(base_url=provider, timeout=10) as client:
        query = {"client_id": "parley", "redirect_uri": REDIRECT, "response_type": "code", "scope": "openid email"}
        answer = client.post("/oauth2/authorize", params=query, data={"sub": sub})
        assert answer.status_code == 302, answer.text
        code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
        grant = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
        tokens = client.post("/oauth2/token", data=grant, auth=("parley", "secret"))
        assert tokens.status_code == 200, tokens.text
        return tokens.json()["access_token"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_sign_in_stands_until_the_provider_revokes_it_then_falls_at_the_next_check(provider):
    clock = Clock()
    check = SignInCheck(f"{provider}/.well-known/openid-configuration", interval=60, clock=clock)
    token, other = access_token(provider, "ada"), access_token(provider, "grace")
    assert check.still_valid(token) and check.still_valid(other)
    httpx.post(f"{provider}/users/ada/revoke-tokens").raise_for_status()
    clock.now += 59
    assert check.still_valid(token)  # within the interval the answer is reused, not asked again
    clock.now += 2
    assert not check.still_valid(token)
    assert check.still_valid(other)  # only the revoked person loses access
    clock.now += 3600
    assert not check.still_valid(token)  # and stays out
    assert not check.still_valid("made-up-token")


def test_the_interval_is_at_most_five_minutes():
    assert SignInCheck("http://127.0.0.1:9/x", interval=3600).interval == 300


def test_an_unreachable_provider_keeps_the_last_answer_and_logs_no_token(provider, caplog):
    clock = Clock()
    token = access_token(provider, "linus")
    check = SignInCheck(f"{provider}/.well-known/openid-configuration", interval=10, clock=clock)
    assert check.still_valid(token)
    dead = SignInCheck(f"http://127.0.0.1:{free_port()}/.well-known/openid-configuration", interval=10, clock=clock)
    with caplog.at_level(logging.WARNING, logger="utils.accounts"):
        assert dead.still_valid(token)  # an outage does not lock people out
    assert "re-check" in caplog.text and token not in caplog.text
    missing = SignInCheck(f"{provider}/no-such-document", interval=10, clock=clock)
    assert missing.still_valid(token)


def test_make_assign_owner_moves_the_conversations_kept_before_accounts(tmp_path):
    import os
    import subprocess
    import sys

    from model.json_store import JsonFileStore
    from model.message import Message
    from tests.conftest import APP_DIR, PROVIDER_VARS

    path = tmp_path / "conversations.json"
    store = JsonFileStore(path)
    hello = Message.user("hello")
    store.save("From before", [hello])
    env = {k: v for k, v in os.environ.items() if k not in PROVIDER_VARS and k != "CONVERSATIONS_URL"}
    env["CONVERSATIONS_FILE"] = str(path)

    def assign(owner: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "model.assign_owner", owner]
        return subprocess.run(command, cwd=APP_DIR, env=env, capture_output=True, text=True, timeout=60)

    unknown = assign("grace@example.com")
    assert unknown.returncode == 1 and "No one has signed in as 'grace@example.com'" in unknown.stderr
    store.record_account("grace-sub", "grace@example.com", "Grace", "2026-12-02T10:00:00Z")
    done = assign("grace@example.com")
    assert done.returncode == 0 and "Gave 1 conversation(s) to grace@example.com" in done.stdout, done.stderr
    assert store.names() == [] and store.owned_by("grace-sub").get("From before") == [hello]
    assert json.loads(path.read_text(encoding="utf-8")) == {}  # conversations.json keeps its format, emptied


@pytest.mark.parametrize("backend", ["process", "redis"])
def test_chat_tokens_belong_to_the_owner_whose_key_asked_for_them(backend, redis_server):
    import redis

    from controller.chat_tokens import ChatTokens, RedisChatTokens, TokenError

    if backend == "redis":
        redis_server.flush()
        tokens: ChatTokens = RedisChatTokens(redis.Redis.from_url(redis_server.url(), decode_responses=True), 60)
    else:
        tokens = ChatTokens(60)
    ada, bob = tokens.owned_by("ada"), tokens.owned_by("bob")
    adas, bobs = ada.issue("Plans", "tutor"), bob.issue("Plans")
    assert (adas.owner, bobs.owner) == ("ada", "bob")
    with pytest.raises(TokenError):
        bob.get(adas.token)  # another owner's token is not known to Bob
    with pytest.raises(TokenError):
        bob.refresh(adas.token)
    assert tokens.get(adas.token).owner == "ada"  # the server's own view (the websocket) knows it
    assert bob.revoke("Plans") == 1  # only Bob's "Plans" token
    ada.rename("Plans", "Plans 2")
    assert ada.get(adas.token).name == "Plans 2" and ada.get(adas.token).assistant == "tutor"
    assert tokens.owned_by("local").issue("Desk").owner == tokens.issue("Desk").owner == "local"
