"""The JSON file store's own behaviour (the contract every store keeps is tests/test_store_contract.py):
the plain conversations.json format, files written by other code, bad files moved aside, backups,
the lock, atomic writes and the Markdown export."""

import json
import os

import pytest
from llama_index.core.base.llms.types import MessageRole

from model.json_store import JsonFileStore
from model.message import Message
from model.store import StoreError
from model.transfer import export_markdown, parse_import

PLAIN_FILE = {
    "My chat": [
        {"role": "user", "content": "Hi, my name is Ada."},
        {"role": "assistant", "content": "Hello Ada!"},
    ],
    "Другой 💬": [{"role": "user", "content": "Привет"}],
}


def plain_save_conversation(path, name, messages):
    """How the app this one grew from saved: read the dict, set the name, json.dump it indented."""
    data = json.loads(path.read_text()) if path.exists() else {}
    data[name] = messages
    path.write_text(json.dumps(data, indent=4))


def test_a_plain_file_loads_unchanged(tmp_path):
    path = tmp_path / "conversations.json"
    path.write_text(json.dumps(PLAIN_FILE), encoding="utf-8")
    store = JsonFileStore(path)
    loaded = store.load_all()
    assert list(loaded) == list(PLAIN_FILE)
    assert [m.to_dict() for m in loaded["My chat"]] == PLAIN_FILE["My chat"]
    assert loaded["Другой 💬"][0].role is MessageRole.USER


def test_a_file_written_by_other_code_loads(tmp_path):
    path = tmp_path / "conversations.json"
    plain_save_conversation(path, "a", [{"role": "user", "content": "one"}])
    plain_save_conversation(path, "b", [{"role": "assistant", "content": "two"}])
    assert JsonFileStore(path).get("b") == [Message(MessageRole.ASSISTANT, "two")]


def test_save_writes_the_plain_format_and_keeps_other_conversations(tmp_path):
    path = tmp_path / "conversations.json"
    path.write_text(json.dumps(PLAIN_FILE), encoding="utf-8")
    store = JsonFileStore(path)
    store.save("  New one  ", [Message(MessageRole.USER, "hey"), Message(MessageRole.ASSISTANT, "yo")])
    on_disk = json.loads(path.read_text(encoding="utf-8"))
    assert on_disk["New one"] == [{"role": "user", "content": "hey"}, {"role": "assistant", "content": "yo"}]
    assert on_disk["My chat"] == PLAIN_FILE["My chat"]
    assert not list(tmp_path.glob("*.tmp"))


def test_delete_removes_only_that_conversation_and_keeps_a_backup(tmp_path):
    path = tmp_path / "conversations.json"
    path.write_text(json.dumps(PLAIN_FILE), encoding="utf-8")
    store = JsonFileStore(path)
    store.delete("My chat")
    assert list(json.loads(path.read_text(encoding="utf-8"))) == ["Другой 💬"]
    backups = store.list_backups()
    assert len(backups) == 1 and "My chat" in json.loads(backups[0].read_text(encoding="utf-8"))


def test_backups_are_rotated(tmp_path):
    store = JsonFileStore(tmp_path / "c.json", backups=2)
    for i in range(5):
        store.save(f"n{i}", [Message.user("x")])
        store.delete(f"n{i}")
    assert len(store.list_backups()) == 2


@pytest.mark.parametrize("content", ["", "{not json", '{"a": [{"role": "user", "content": "x"}', "[1, 2]"])
def test_bad_file_is_moved_aside_not_overwritten(tmp_path, content):
    path = tmp_path / "conversations.json"
    path.write_text(content, encoding="utf-8")
    store = JsonFileStore(path)
    assert store.load_all() == {}
    aside = list(tmp_path.glob("conversations.json.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_text(encoding="utf-8") == content
    notices = store.pop_notices()
    assert len(notices) == 1 and str(aside[0]) in notices[0]
    store.save("fresh", [Message.user("x")])
    assert aside[0].read_text(encoding="utf-8") == content


def test_partly_valid_file_keeps_readable_conversations(tmp_path):
    path = tmp_path / "conversations.json"
    path.write_text(json.dumps({"good": PLAIN_FILE["My chat"], "bad": "oops"}), encoding="utf-8")
    store = JsonFileStore(path)
    assert list(store.load_all()) == ["good"]
    assert list(json.loads(path.read_text(encoding="utf-8"))) == ["good"]
    assert len(list(tmp_path.glob("conversations.json.corrupt-*"))) == 1


def test_failed_write_leaves_file_unchanged(tmp_path, monkeypatch):
    path = tmp_path / "conversations.json"
    path.write_text(json.dumps(PLAIN_FILE), encoding="utf-8")
    store = JsonFileStore(path)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(StoreError, match="No space left"):
        store.save("x", [Message.user("y")])
    assert json.loads(path.read_text(encoding="utf-8")) == PLAIN_FILE
    assert not list(tmp_path.glob("*.tmp"))


def test_undated_conversations_keep_their_file_order_after_dated_ones(tmp_path):
    store = JsonFileStore(tmp_path / "c.json")
    store.save("undated 1", [Message(MessageRole.USER, "a")])
    store.save("dated", [Message(MessageRole.USER, "b", "2026-06-01T00:00:00Z")])
    store.save("undated 2", [Message(MessageRole.USER, "c")])
    assert store.names() == ["dated", "undated 1", "undated 2"]


def test_reads_are_cached_until_the_file_changes(tmp_path):
    path = tmp_path / "c.json"
    store = JsonFileStore(path)
    store.save("a", [Message.user("x")])
    first = store.load_all()
    assert store.load_all() is first
    other = JsonFileStore(path)
    other.save("b", [Message.user("y")])
    assert set(store.load_all()) == {"a", "b"}


def test_export_markdown_has_title_roles_and_text():
    md = export_markdown("Trip", [Message(MessageRole.USER, "Where to?"), Message(MessageRole.ASSISTANT, "Rome.")])
    assert md.startswith("# Trip\n")
    assert "### User" in md and "Where to?" in md and "### Assistant" in md and "Rome." in md


def test_import_name_clash_keep_both_or_replace(tmp_path):
    store = JsonFileStore(tmp_path / "c.json")
    store.save("A", [Message.user("old")])
    incoming = {"A": [Message.user("new")], "B": [Message.user("b")]}
    assert store.import_conversations(incoming, replace=False) == ["A (imported)", "B"]
    assert store.get("A")[0].content == "old" and store.get("A (imported)")[0].content == "new"
    assert store.import_conversations({"A": [Message.user("newer")]}, replace=True) == ["A"]
    assert store.get("A")[0].content == "newer"
    assert store.list_backups(), "replacing on import keeps a backup first"


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"not json", "not valid JSON"),
        (b"[1]", "not in the conversations format"),
        (b'{"a": [{"role": "alien", "content": "x"}]}', "not in the conversations format"),
        (b"{}", "no conversations"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_import_rejects_invalid_files_and_changes_nothing(tmp_path, content, reason):
    path = tmp_path / "c.json"
    store = JsonFileStore(path)
    store.save("keep", [Message.user("x")])
    before = path.read_bytes()
    with pytest.raises(StoreError, match=reason):
        store.import_conversations(parse_import(content), replace=True)
    assert path.read_bytes() == before


def test_restore_backup_brings_back_a_deleted_conversation(tmp_path):
    store = JsonFileStore(tmp_path / "c.json")
    store.save("precious", [Message.user("x")])
    store.delete("precious")
    assert store.get("precious") is None
    store.restore_backup(store.list_backups()[0])
    assert store.get("precious")[0].content == "x"


def test_lock_held_elsewhere_times_out_with_a_clear_message_and_no_change(tmp_path):
    from filelock import FileLock

    path = tmp_path / "conversations.json"
    path.write_text(json.dumps(PLAIN_FILE), encoding="utf-8")
    store = JsonFileStore(path, lock_timeout=0.2)
    with FileLock(str(path) + ".lock"), pytest.raises(StoreError, match="busy"):  # another window is writing
        store.save("x", [Message.user("y")])
    assert json.loads(path.read_text(encoding="utf-8")) == PLAIN_FILE


def test_restore_of_a_file_that_is_not_a_backup_is_refused(tmp_path):
    path = tmp_path / "conversations.json"
    path.write_text(json.dumps(PLAIN_FILE), encoding="utf-8")
    store = JsonFileStore(path)
    elsewhere = tmp_path / "other.json"
    elsewhere.write_text("{}", encoding="utf-8")
    with pytest.raises(StoreError, match="is not a backup of conversations.json"):
        store.restore_backup(elsewhere)
    assert json.loads(path.read_text(encoding="utf-8")) == PLAIN_FILE


def test_restore_of_a_damaged_backup_is_refused_and_changes_nothing(tmp_path):
    path = tmp_path / "conversations.json"
    path.write_text(json.dumps(PLAIN_FILE), encoding="utf-8")
    store = JsonFileStore(path)
    store.delete("My chat")  # makes a backup
    backup = store.list_backups()[0]
    backup.write_text('{"My chat": [{"role": "wizard", "content": 1}]}', encoding="utf-8")
    before = path.read_text(encoding="utf-8")
    with pytest.raises(StoreError, match="damaged") as caught:
        store.restore_backup(backup)
    assert "Nothing was changed" in str(caught.value)
    assert path.read_text(encoding="utf-8") == before
    backup.write_text("{ not json", encoding="utf-8")
    with pytest.raises(StoreError, match="cannot be read"):
        store.restore_backup(backup)
    assert path.read_text(encoding="utf-8") == before


def test_renaming_a_missing_conversation_says_so_and_changes_nothing(tmp_path):
    path = tmp_path / "conversations.json"
    path.write_text(json.dumps(PLAIN_FILE), encoding="utf-8")
    store = JsonFileStore(path)
    with pytest.raises(StoreError, match="There is no saved conversation called 'Gone'"):
        store.rename("Gone", "Anything")
    assert json.loads(path.read_text(encoding="utf-8")) == PLAIN_FILE
    assert store.list_backups() == []


def test_temp_files_of_dead_writers_are_removed_by_the_next_write(tmp_path):
    path = tmp_path / "conversations.json"
    store = JsonFileStore(path)
    store.save("a", [Message.user("x")])
    orphans = [tmp_path / f".conversations.json.dead{i}.tmp" for i in range(3)]
    for orphan in orphans:
        orphan.write_bytes(b"x" * 10_000)  # what a writer killed before os.replace leaves
    unrelated = tmp_path / ".other.json.dead.tmp"
    unrelated.write_bytes(b"keep me")
    store.save("b", [Message.user("y")])
    assert not any(orphan.exists() for orphan in orphans)
    assert unrelated.read_bytes() == b"keep me"  # another store's temp file is not ours to remove
    assert set(json.loads(path.read_text(encoding="utf-8"))) == {"a", "b"}
