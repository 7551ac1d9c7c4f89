"""Unit tests: Message conversions to and from the conversations.json dict and llama-index ChatMessage."""

import dataclasses

import pytest
from llama_index.core.base.llms.types import ChatMessage, MessageRole

from model.message import InvalidMessageError, Message


def test_seed_dict_round_trip_keeps_role_and_content():
    seed = {"role": "user", "content": "Hello, I am Ada."}
    message = Message.from_dict(seed)
    assert message.role is MessageRole.USER
    assert message.content == "Hello, I am Ada."
    assert message.to_dict() == seed


def test_unknown_keys_are_ignored_and_timestamp_kept():
    message = Message.from_dict(
        {"role": "assistant", "content": "hi", "timestamp": "2026-01-01T00:00:00Z", "tokens": 3}
    )
    assert message == Message(MessageRole.ASSISTANT, "hi", "2026-01-01T00:00:00Z")
    assert message.to_dict() == {"role": "assistant", "content": "hi", "timestamp": "2026-01-01T00:00:00Z"}


def test_incomplete_flag_round_trips():
    message = Message.assistant("half a rep", incomplete=True)
    assert Message.from_dict(message.to_dict()).incomplete is True
    assert "incomplete" not in Message.assistant("done").to_dict()


@pytest.mark.parametrize(
    "bad",
    [
        {"role": "wizard", "content": "x"},
        {"role": "tool", "content": "x"},
        {"role": "user", "content": None},
        {"content": "no role"},
        ["user", "x"],
    ],
)
def test_invalid_dicts_are_rejected(bad):
    with pytest.raises(InvalidMessageError):
        Message.from_dict(bad)


def test_chat_message_round_trip():
    message = Message(MessageRole.SYSTEM, "Be brief.")
    chat = message.to_chat_message()
    assert isinstance(chat, ChatMessage)
    assert (chat.role, chat.content) == (MessageRole.SYSTEM, "Be brief.")
    assert Message.from_chat_message(chat) == message


def test_chat_message_with_none_content_becomes_empty_text():
    assert Message.from_chat_message(ChatMessage(role=MessageRole.ASSISTANT, content=None)).content == ""


def test_a_message_shared_by_two_conversations_cannot_be_changed_through_one():
    shared = Message.user("x")
    first, second = [shared], [shared]
    with pytest.raises(dataclasses.FrozenInstanceError):
        first[0].content = "changed"  # type: ignore[misc]
    first[0] = dataclasses.replace(first[0], content="changed")
    assert second[0].content == "x" and first[0].content == "changed"


def test_typed_parts_round_trip_and_malformed_ones_are_dropped():
    stored = {
        "role": "assistant",
        "content": "42",
        "tool_calls": [
            {"id": "c1", "name": "calculator", "arguments": "{}", "result": "42", "error": False, "round": 0},
            {"id": "c2", "name": "calculator"},  # no arguments or result: dropped
        ],
        "sources": [{"file_name": "a.txt", "where": "", "score": 0.5, "text": "x"}, {"where": "no file"}],
        "attachments": [{"name": "a.txt", "text": "x", "used_chars": 1, "total_chars": 1}, {"name": 3}],
        "feedback": {"rating": 1, "comment": "", "timestamp": None},
    }
    message = Message.from_dict(stored)
    assert [c.id for c in message.tool_calls] == ["c1"] and message.tool_calls[0].result == "42"
    assert [s.file_name for s in message.sources] == ["a.txt"]
    assert [a.name for a in message.attachments] == ["a.txt"]
    assert message.feedback is not None and message.feedback.rating == 1
    kept = {**stored, "tool_calls": stored["tool_calls"][:1], "sources": stored["sources"][:1]}
    kept["attachments"] = stored["attachments"][:1]
    assert message.to_dict() == kept


def test_model_label_round_trips():
    message = Message.assistant("hi", model="smollm2-135m-instruct")
    assert Message.from_dict(message.to_dict()).model == "smollm2-135m-instruct"
