"""Unit tests: the conversations.json store, in the seed's format."""

import json
import os

import pytest
from llama_index.core.base.llms.types import MessageRole

from model.conversation_store import ConversationStore, StoreError
from model.message import Message

SEED_FILE = {
    "My chat": [
        {"role": "user", "content": "Hi, my name is Ada."},
        {"role": "assistant", "content": "Hello Ada!"},
    ],
    "Другой 💬": [{"role": "user", "content": "Привет"}],
}


def seed_save_conversation(path, name, messages):
    """The seed app's own save code shape: read the dict, set the name, json.dump it."""
    data = json.loads(path.read_text()) if path.exists() else {}
    data[name] = messages
    path.write_text(json.dumps(data, indent=4))


def test_seed_file_loads_unchanged(tmp_path):
    path = tmp_path / "conversations.json"
    path.write_text(json.dumps(SEED_FILE), encoding="utf-8")
    store = ConversationStore(path)
    loaded = store.load_all()
    assert list(loaded) == list(SEED_FILE)
    assert [m.to_dict() for m in loaded["My chat"]] == SEED_FILE["My chat"]
    assert loaded["Другой 💬"][0].role is MessageRole.USER


def test_file_written_by_seed_code_loads(tmp_path):
    path = tmp_path / "conversations.json"
    seed_save_conversation(path, "a", [{"role": "user", "content": "one"}])
    seed_save_conversation(path, "b", [{"role": "assistant", "content": "two"}])
    assert ConversationStore(path).get("b") == [Message(MessageRole.ASSISTANT, "two")]


def test_save_writes_seed_format_and_keeps_other_conversations(tmp_path):
    path = tmp_path / "conversations.json"
    path.write_text(json.dumps(SEED_FILE), encoding="utf-8")
    store = ConversationStore(path)
    store.save("  New one  ", [Message(MessageRole.USER, "hey"), Message(MessageRole.ASSISTANT, "yo")])
    on_disk = json.loads(path.read_text(encoding="utf-8"))
    assert on_disk["New one"] == [{"role": "user", "content": "hey"}, {"role": "assistant", "content": "yo"}]
    assert on_disk["My chat"] == SEED_FILE["My chat"]
    assert not list(tmp_path.glob("*.tmp"))


def test_delete_removes_only_that_conversation_and_keeps_a_backup(tmp_path):
    path = tmp_path / "conversations.json"
    path.write_text(json.dumps(SEED_FILE), encoding="utf-8")
    store = ConversationStore(path)
    store.delete("My chat")
    assert list(json.loads(path.read_text(encoding="utf-8"))) == ["Другой 💬"]
    backups = store.list_backups()
    assert len(backups) == 1 and "My chat" in json.loads(backups[0].read_text(encoding="utf-8"))


def test_backups_are_rotated(tmp_path):
    store = ConversationStore(tmp_path / "c.json", backups=2)
    for i in range(5):
        store.save(f"n{i}", [Message.user("x")])
        store.delete(f"n{i}")
    assert len(store.list_backups()) == 2


@pytest.mark.parametrize("name", ["", "   ", "\t\n"])
def test_blank_names_are_refused(tmp_path, name):
    store = ConversationStore(tmp_path / "c.json")
    with pytest.raises(StoreError, match="enter a name"):
        store.save(name, [Message.user("x")])
    assert not (tmp_path / "c.json").exists()


@pytest.mark.parametrize(
    "content", ["", "{not json", '{"a": [{"role": "user", "content": "x"}', "[1, 2]"]
)
def test_bad_file_is_moved_aside_not_overwritten(tmp_path, content):
    path = tmp_path / "conversations.json"
    path.write_text(content, encoding="utf-8")
    store = ConversationStore(path)
    assert store.load_all() == {}
    aside = list(tmp_path.glob("conversations.json.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_text(encoding="utf-8") == content
    notices = store.pop_notices()
    assert len(notices) == 1 and str(aside[0]) in notices[0]
    store.save("fresh", [Message.user("x")])
    assert aside[0].read_text(encoding="utf-8") == content


def test_partly_valid_file_keeps_readable_conversations(tmp_path):
    path = tmp_path / "conversations.json"
    path.write_text(json.dumps({"good": SEED_FILE["My chat"], "bad": "oops"}), encoding="utf-8")
    store = ConversationStore(path)
    assert list(store.load_all()) == ["good"]
    assert list(json.loads(path.read_text(encoding="utf-8"))) == ["good"]
    assert len(list(tmp_path.glob("conversations.json.corrupt-*"))) == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions")
def test_read_only_folder_leaves_file_unchanged(tmp_path):
    path = tmp_path / "conversations.json"
    path.write_text(json.dumps(SEED_FILE), encoding="utf-8")
    store = ConversationStore(path)
    os.chmod(tmp_path, 0o555)
    try:
        with pytest.raises(StoreError, match="not changed"):
            store.save("x", [Message.user("y")])
    finally:
        os.chmod(tmp_path, 0o755)
    assert json.loads(path.read_text(encoding="utf-8")) == SEED_FILE


def test_failed_write_leaves_file_unchanged(tmp_path, monkeypatch):
    path = tmp_path / "conversations.json"
    path.write_text(json.dumps(SEED_FILE), encoding="utf-8")
    store = ConversationStore(path)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(StoreError, match="No space left"):
        store.save("x", [Message.user("y")])
    assert json.loads(path.read_text(encoding="utf-8")) == SEED_FILE
    assert not list(tmp_path.glob("*.tmp"))


def test_names_newest_activity_first(tmp_path):
    store = ConversationStore(tmp_path / "c.json")
    store.save("old", [Message(MessageRole.USER, "a", "2026-01-01T00:00:00Z")])
    store.save("new", [Message(MessageRole.USER, "b", "2026-06-01T00:00:00Z")])
    store.save("undated", [Message(MessageRole.USER, "c")])
    assert store.names() == ["new", "old", "undated"]


def test_reads_are_cached_until_the_file_changes(tmp_path):
    path = tmp_path / "c.json"
    store = ConversationStore(path)
    store.save("a", [Message.user("x")])
    first = store.load_all()
    assert store.load_all() is first
    other = ConversationStore(path)
    other.save("b", [Message.user("y")])
    assert set(store.load_all()) == {"a", "b"}


def test_rename_refuses_taken_names(tmp_path):
    store = ConversationStore(tmp_path / "c.json")
    store.save("a", [Message.user("x")])
    store.save("b", [Message.user("y")])
    with pytest.raises(StoreError, match="already exists"):
        store.rename("a", "b")
    assert store.rename("a", " c ") == "c"
    assert set(store.load_all()) == {"b", "c"}
