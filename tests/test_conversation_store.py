"""Unit tests: the conversations.json store, in the seed's format."""

import json
import os

import pytest
from llama_index.core.base.llms.types import MessageRole

from model.conversation_store import ConversationStore, StoreError, export_json, export_markdown, parse_import
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


@pytest.mark.parametrize("content", ["", "{not json", '{"a": [{"role": "user", "content": "x"}', "[1, 2]"])
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


def test_search_matches_names_and_message_text_ignoring_case(tmp_path):
    store = ConversationStore(tmp_path / "c.json")
    store.save("Holiday plans", [Message.user("Rome in May")])
    store.save("Work", [Message.user("The quarterly REPORT is due")])
    assert store.search("holiday") == ["Holiday plans"]
    assert store.search("report") == ["Work"]
    assert store.search("  ") == store.names()
    assert store.search("nothing like this") == []


def test_export_json_imports_back_unchanged(tmp_path):
    messages = [Message.user("Hi 👋"), Message.assistant("Hello", model="m")]
    text = export_json("Greeting", messages)
    assert parse_import(text) == {"Greeting": messages}
    other = ConversationStore(tmp_path / "other.json")
    assert other.import_conversations(parse_import(text), replace=False) == ["Greeting"]
    assert other.get("Greeting") == messages


def test_export_markdown_has_title_roles_and_text():
    md = export_markdown("Trip", [Message(MessageRole.USER, "Where to?"), Message(MessageRole.ASSISTANT, "Rome.")])
    assert md.startswith("# Trip\n")
    assert "### User" in md and "Where to?" in md and "### Assistant" in md and "Rome." in md


def test_import_name_clash_keep_both_or_replace(tmp_path):
    store = ConversationStore(tmp_path / "c.json")
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
    store = ConversationStore(path)
    store.save("keep", [Message.user("x")])
    before = path.read_bytes()
    with pytest.raises(StoreError, match=reason):
        store.import_conversations(parse_import(content), replace=True)
    assert path.read_bytes() == before


def test_restore_backup_brings_back_a_deleted_conversation(tmp_path):
    store = ConversationStore(tmp_path / "c.json")
    store.save("precious", [Message.user("x")])
    store.delete("precious")
    assert store.get("precious") is None
    store.restore_backup(store.list_backups()[0])
    assert store.get("precious")[0].content == "x"


@pytest.mark.parametrize("name", ["Café ☕ 日本語", "🚀🔥", "x" * 500, "a/b\\c\"d'e<script>"])
def test_any_unicode_or_long_name_round_trips(tmp_path, name):
    path = tmp_path / "c.json"
    ConversationStore(path).save(f"  {name}  ", [Message.user("hi")])
    assert list(json.loads(path.read_text(encoding="utf-8"))) == [name]
    assert ConversationStore(path).get(name)[0].content == "hi"


def test_lock_held_elsewhere_times_out_with_a_clear_message_and_no_change(tmp_path):
    from filelock import FileLock

    path = tmp_path / "conversations.json"
    path.write_text(json.dumps(SEED_FILE), encoding="utf-8")
    store = ConversationStore(path, lock_timeout=0.2)
    with FileLock(str(path) + ".lock"), pytest.raises(StoreError, match="busy"):  # another window is writing
        store.save("x", [Message.user("y")])
    assert json.loads(path.read_text(encoding="utf-8")) == SEED_FILE


def test_restore_of_a_file_that_is_not_a_backup_is_refused(tmp_path):
    path = tmp_path / "conversations.json"
    path.write_text(json.dumps(SEED_FILE), encoding="utf-8")
    store = ConversationStore(path)
    elsewhere = tmp_path / "other.json"
    elsewhere.write_text("{}", encoding="utf-8")
    with pytest.raises(StoreError, match="is not a backup of conversations.json"):
        store.restore_backup(elsewhere)
    assert json.loads(path.read_text(encoding="utf-8")) == SEED_FILE


def test_restore_of_a_damaged_backup_is_refused_and_changes_nothing(tmp_path):
    path = tmp_path / "conversations.json"
    path.write_text(json.dumps(SEED_FILE), encoding="utf-8")
    store = ConversationStore(path)
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
    path.write_text(json.dumps(SEED_FILE), encoding="utf-8")
    store = ConversationStore(path)
    with pytest.raises(StoreError, match="There is no saved conversation called 'Gone'"):
        store.rename("Gone", "Anything")
    assert json.loads(path.read_text(encoding="utf-8")) == SEED_FILE
    assert store.list_backups() == []


def test_temp_files_of_dead_writers_are_removed_by_the_next_write(tmp_path):
    path = tmp_path / "conversations.json"
    store = ConversationStore(path)
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
