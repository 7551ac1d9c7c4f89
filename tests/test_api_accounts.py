"""The chat server with accounts on: per-person API keys, each scoped to its owner's data, the
service keys acting as the "service" user, and a revoked key refused by every instance. Real
uvicorn processes on one store, on the session's local model."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from model.api_keys import SERVICE_OWNER, ApiKeys
from model.json_store import JsonFileStore
from model.message import Message
from tests.test_api import KEY, Api, start_api, stop_api, ws_turn

ADA, BOB = "ada-subject", "bob-subject"


def accounts_home(folder: Path) -> Path:
    """A home folder whose ``~/.streamlit/secrets.toml`` turns sign-in on (the provider is never
    asked by the chat server: keys are its sign-in)."""
    home = folder / "home"
    (home / ".streamlit").mkdir(parents=True)
    (home / ".streamlit" / "secrets.toml").write_text(
        "[auth]\n"
        'redirect_uri = "http://localhost:8501/oauth2callback"\n'
        f'cookie_secret = "{secrets.token_urlsafe(32)}"\n'
        'client_id = "parley"\n'
        'client_secret = "parley-test-secret"\n'
        'server_metadata_url = "http://127.0.0.1:9/.well-known/openid-configuration"\n',
        encoding="utf-8",
    )
    return home


@pytest.fixture(scope="module")
def two_servers(local_server, tmp_path_factory) -> Iterator[tuple[Api, Api, dict[str, str]]]:
    """Two chat servers with accounts on, on one store holding a conversation from before accounts;
    and a key each for Ada and Bob, made as the Account page makes them."""
    folder = tmp_path_factory.mktemp("accounts-api")
    home = accounts_home(folder)
    store = JsonFileStore(folder / "conversations.json")
    store.save("Before accounts", [Message.user("the desktop's own conversation")])
    keys = {ADA: ApiKeys(store).make(ADA, "laptop")[1], BOB: ApiKeys(store).make(BOB, "laptop")[1]}
    first = start_api(folder, local_server, HOME=str(home))
    try:
        second = start_api(folder, local_server, HOME=str(home))
    except BaseException:
        stop_api(first)
        raise
    yield first, second, keys
    stop_api(first)
    stop_api(second)


def client(api: Api, key: str) -> httpx.Client:
    return api.client(key)


def test_each_key_reaches_only_its_owners_conversations(two_servers):
    api, _, keys = two_servers
    with client(api, keys[ADA]) as ada, client(api, keys[BOB]) as bob, client(api, KEY) as service:
        assert ada.post("/conversations", json={"name": "Plans"}).status_code == 201
        assert (
            ada.post("/conversations/Plans/messages", json={"content": "Say hi.", "stream": False}).status_code == 200
        )
        assert [c["name"] for c in ada.get("/conversations").json()["data"]] == ["Plans"]
        assert bob.get("/conversations").json()["data"] == []
        for method, path, body in [
            ("GET", "/conversations/Plans", None),
            ("PATCH", "/conversations/Plans", {"name": "Mine now"}),
            ("POST", "/conversations/Plans/messages", {"content": "hello", "stream": False}),
            ("DELETE", "/conversations/Plans", None),
        ]:
            refused = bob.request(method, path, json=body)
            assert refused.status_code == 404, (method, path, refused.text)
            assert "no conversation called" in refused.json()["error"]["message"]
        assert bob.post("/conversations", json={"name": "Plans"}).status_code == 201  # Bob's own, apart
        assert [m["role"] for m in ada.get("/conversations/Plans").json()["messages"]] == ["user", "assistant"]
        # PARLEY_API_KEYS act as the service user: neither the desktop's data nor anyone else's
        assert service.get("/conversations").json()["data"] == []
        assert service.get("/conversations/Before accounts").status_code == 404
    saved = JsonFileStore(api.conversations)
    assert saved.names() == ["Before accounts"]  # the local owner's file is untouched
    assert saved.owned_by(ADA).names() == ["Plans"] and saved.owned_by(BOB).get("Plans") == []
    assert saved.owned_by(SERVICE_OWNER).names() == []


def test_a_chat_token_works_only_for_its_owner_and_talks_in_their_store(two_servers):
    api, other, keys = two_servers
    with client(api, keys[ADA]) as ada, client(other, keys[BOB]) as bob:
        token = ada.post("/token", json={"name": "Socket talk"}).json()["token"]
        refused = bob.get("/refresh_token", params={"token": token})
        assert refused.status_code == 401 and "not known" in refused.json()["error"]["message"]
        assert bob.get("/conversations/Socket talk").status_code == 404
        assert bob.post("/token", json={"name": "Socket talk"}).status_code == 200  # Bob's own conversation
        assert bob.delete("/conversations/Socket talk").status_code == 204  # must not revoke Ada's token

        async def talk() -> dict:
            async with websockets.connect(f"{api.ws_url}/chat?token={token}") as socket:
                return (await ws_turn(socket, "Hello there."))[1]

        done = asyncio.run(talk())
        assert done["type"] == "done", done
        assert ada.get("/refresh_token", params={"token": token}).status_code == 200
        assert [m["content"] for m in ada.get("/conversations/Socket talk").json()["messages"]][0] == "Hello there."
        assert ada.delete("/conversations/Socket talk").status_code == 204

        async def closed() -> int | None:
            try:
                async with websockets.connect(f"{api.ws_url}/chat?token={token}") as socket:
                    await socket.send("still there?")
                    await asyncio.wait_for(socket.recv(), 30)
            except ConnectionClosed as exc:
                return exc.rcvd.code if exc.rcvd else None
            return None

        assert asyncio.run(closed()) == 4401  # the owner deleted the conversation: the token is gone


def test_a_revoked_key_is_refused_by_every_instance_at_its_next_request(two_servers):
    api, other, _ = two_servers
    store = JsonFileStore(api.conversations)
    made, key = ApiKeys(store).make(ADA, "to revoke")
    for server in (api, other):
        with client(server, key) as ada:
            assert ada.get("/conversations").status_code == 200
    assert [k.last_used is not None for k in ApiKeys(store).of(ADA) if k.id == made.id] == [True]
    assert ApiKeys(store).revoke(ADA, made.id)
    for server in (api, other):
        with client(server, key) as ada:
            refused = ada.get("/conversations")
            assert refused.status_code == 401, refused.text
            assert refused.json()["error"]["code"] == "invalid_api_key"
    assert key not in api.log() + other.log()  # never logged
    listed = json.dumps([k.__dict__ for k in ApiKeys(store).of()])
    assert key.rsplit("-", 1)[-1] not in listed
