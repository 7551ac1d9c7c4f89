"""PostgreSQL and Redis as the conversation store, on real servers: two app instances sharing
conversations, servers restarted mid-session, unreachable or malformed URLs, and migration."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from controller.chat import Chat
from controller.engines import AgentEngine
from model.json_store import JsonFileStore
from model.stores import open_store
from tests.conftest import APP_DIR
from tests.test_pages import MEMORY, TIMEOUT, chat_texts
from utils.local_server import free_port
from utils.providers import LLMConfig
from view.common import widget_key
from view.style import CONVERSATION_PREFIX


@pytest.fixture(params=["postgresql", "redis"])
def backend(request, pg_server, redis_server):
    """(kind, URL of an empty store, the server) for each database backend."""
    if request.param == "postgresql":
        pg_server.ensure_running()
        return "postgresql", pg_server.new_database(), pg_server
    redis_server.ensure_running()
    redis_server.flush()
    return "redis", redis_server.url(), redis_server


def fresh_page() -> AppTest:
    """The memory page as a new app instance would see it (nothing cached from another run)."""
    st.cache_resource.clear()
    at = AppTest.from_file(MEMORY, default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    return at


def test_two_app_instances_share_conversations(app_env, backend, monkeypatch):
    _, url, _ = backend
    monkeypatch.setenv("CONVERSATIONS_URL", url)
    first = fresh_page()
    first.chat_input[0].set_value("Hello from the first instance").run()
    next(b for b in first.sidebar.button if b.label == "Save").click().run()
    first.sidebar.text_input(key="memory_save_name").input("Shared")
    next(b for b in first.sidebar.button if b.label == "Confirm Save").click().run()
    second = fresh_page()  # another instance: its own connection to the same database
    second.button(key=widget_key(CONVERSATION_PREFIX, "Shared")).click().run()
    assert chat_texts(second)[0] == ("user", "Hello from the first instance") and len(chat_texts(second)) == 2
    second.chat_input[0].set_value("And hello from the second").run()
    first.run()  # the first instance's next rerun shows the second's turn
    assert [text for _, text in chat_texts(first)][2] == "And hello from the second"
    assert len(chat_texts(first)) == 4
    assert not app_env.exists(), "a database store must not write the JSON file"


def test_a_restarted_server_between_two_turns_loses_nothing(backend, local_config):
    _, url, server = backend
    store = open_store(url)
    try:
        chat = Chat(AgentEngine.from_defaults(local_config), store)
        chat.save_as("Across a restart")
        "".join(chat.send("First turn."))
        server.restart()
        "".join(chat.send("Second turn, after the restart."))
        assert chat.save_error is None
        saved = [m.content for m in store.get("Across a restart")]
        assert saved[0] == "First turn." and saved[2] == "Second turn, after the restart." and len(saved) == 4
    finally:
        store.close()


def test_a_server_down_keeps_the_typed_message_and_the_next_save_catches_up(backend, local_config, fault):
    _, url, server = backend
    store = open_store(url)
    config = LLMConfig(provider="openai_like", model="fault-model", base_url=fault.base_url)
    try:
        chat = Chat(AgentEngine.from_defaults(config), store)
        chat.save_as("Down for a while")
        server.stop()
        "".join(chat.send("Typed while the database was down"))
        assert chat.save_error and ("PostgreSQL" in chat.save_error or "Redis" in chat.save_error)
        assert "still here" in chat.save_error
        assert [m.content for m in chat.messages][0] == "Typed while the database was down"
        server.start()
        "".join(chat.send("And after it came back"))
        assert chat.save_error is None
        assert [m.content for m in store.get("Down for a while")] == [
            "Typed while the database was down",
            "Hello from the fault server.",
            "And after it came back",
            "Hello from the fault server.",
        ]
    finally:
        server.ensure_running()
        store.close()


@pytest.mark.parametrize(
    "url, shown, hidden",
    [
        (
            "postgresql://parley:s3cret-pw@127.0.0.1:{port}/db",
            "postgresql://parley:***@127.0.0.1:{port}/db",
            "s3cret-pw",
        ),
        ("redis://:s3cret-pw@127.0.0.1:{port}/0", "redis://:***@127.0.0.1:{port}/0", "s3cret-pw"),
        ("postgresql://parley@127.0.0.1:notaport/db", "postgresql://parley@127.0.0.1:notaport/db", None),
        ("mysql://parley:s3cret-pw@127.0.0.1/db", "is not a file path", "s3cret-pw"),
    ],
)
def test_an_unreachable_or_malformed_database_is_named_on_the_page_without_falling_back(
    app_env, monkeypatch, url, shown, hidden
):
    port = free_port()
    monkeypatch.setenv("CONVERSATIONS_URL", url.format(port=port))
    st.cache_resource.clear()
    at = AppTest.from_file(MEMORY, default_timeout=TIMEOUT).run()
    assert not at.exception
    errors = " ".join(e.value for e in at.error)
    assert shown.format(port=port) in errors, errors
    if hidden:
        assert hidden not in errors
    assert not at.chat_input, "the page must stop rather than chat without a store"
    assert not app_env.exists(), "Parley fell back to the JSON file"


def test_copy_conversations_copies_everything_and_verifies(tmp_path, backend):
    _, url, _ = backend
    source = tmp_path / "conversations.json"
    seed = {
        f"chat {i}": [{"role": "user", "content": f"hello {i}"}, {"role": "assistant", "content": "hi"}]
        for i in range(25)
    }
    seed["Unicode ☕"] = [{"role": "user", "content": "café", "timestamp": "2026-11-22T10:00:00Z"}]
    source.write_text(json.dumps(seed), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "model.copy_conversations", "--from", str(source), "--to", url],
        cwd=APP_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Copied 26 conversation(s) with 51 message(s); every count verified." in result.stdout
    copied = open_store(url)
    try:
        assert copied.load_all() == JsonFileStore(source).load_all()
    finally:
        copied.close()


def test_copying_to_an_unreachable_database_fails_with_a_sentence(tmp_path):
    source = tmp_path / "conversations.json"
    source.write_text(json.dumps({"a": []}), encoding="utf-8")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "model.copy_conversations",
            "--from",
            str(source),
            "--to",
            f"postgresql://parley:pw@127.0.0.1:{free_port()}/db",
        ],
        cwd=APP_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Copying failed: Could not connect to the PostgreSQL database at postgresql://parley:***@")
    assert "Connection refused" in last
    assert ":pw@" not in result.stderr and "Traceback" not in result.stderr


def test_a_database_made_before_owners_keeps_its_data_as_the_local_owners(pg_server):
    """The tables as they were before accounts (a unique name, attachments keyed by SHA-256 alone)
    gain owners when a Parley with accounts opens them: what was there stays the local owner's."""
    import psycopg

    url = pg_server.new_database()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE parley_conversations (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE, "
            "last_activity text NOT NULL DEFAULT '');"
            "CREATE TABLE parley_messages (conversation_id bigint NOT NULL REFERENCES parley_conversations (id) "
            "ON DELETE CASCADE, position integer NOT NULL, message jsonb NOT NULL, "
            "PRIMARY KEY (conversation_id, position));"
            "CREATE INDEX parley_conversations_by_activity ON parley_conversations (last_activity DESC, id);"
            "CREATE TABLE parley_attachments (sha256 text PRIMARY KEY, mime text NOT NULL, data bytea NOT NULL, "
            "stored double precision NOT NULL);"
            "INSERT INTO parley_conversations (name) VALUES ('Before accounts');"
            """INSERT INTO parley_messages VALUES (1, 0, '{"role": "user", "content": "hello"}');"""
            f"INSERT INTO parley_attachments VALUES ('{'a' * 64}', 'image/png', '\\x00', 0);"
        )
    store = open_store(url)
    try:
        assert store.names() == ["Before accounts"] and store.get("Before accounts")[0].content == "hello"
        assert store.attachment("a" * 64) is not None
        ada = store.owned_by("ada")
        assert ada.names() == [] and ada.attachment("a" * 64) is None
        ada.save("Before accounts", store.get("Before accounts"))  # the name is free for another owner
        ada.put_attachment(b"\x00", "image/png")
        assert len(ada.names()) == 1 and len(store.names()) == 1
    finally:
        store.close()
    again = open_store(url)  # opening again (the migration runs every start) changes nothing
    try:
        assert again.names() == ["Before accounts"] and again.owned_by("ada").names() == ["Before accounts"]
    finally:
        again.close()
