"""Unit tests: Message conversions to and from the conversations.json dict and llama-index ChatMessage."""

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


def test_slots_dataclass():
    assert not hasattr(Message.user("x"), "__dict__")


def test_model_label_round_trips():
    message = Message.assistant("hi", model="smollm2-135m-instruct")
    assert Message.from_dict(message.to_dict()).model == "smollm2-135m-instruct"
