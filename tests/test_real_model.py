"""The main paths on the real local model (SmolLM2 via llama-cpp-python's server); no mocked LLM."""

import json
from dataclasses import replace

import pytest
from llama_index.core.base.llms.types import MessageRole
from llama_index.llms.groq import Groq
from llama_index.llms.openai import OpenAI
from llama_index.llms.openai_like import OpenAILike

from controller.chat import Chat
from controller.context import memory_token_limit
from controller.engines import AgentEngine, PlainEngine
from controller.errors import ChatError
from model.json_store import JsonFileStore
from model.message import Message
from tests.fake_keys import OPENAI, fake
from tests.fault_server import RecordingProxy
from utils.llm import build_llm
from utils.local_server import LOCAL_MODEL_ALIAS, free_port
from utils.providers import LLMConfig

STORED = [
    Message(MessageRole.USER, "Hi! My name is Ada Lovelace."),
    Message(MessageRole.ASSISTANT, "Nice to meet you, Ada."),
    Message(MessageRole.USER, "I live in London."),
    Message(MessageRole.ASSISTANT, "London is a lovely city."),
]


@pytest.fixture
def store(tmp_path) -> JsonFileStore:
    return JsonFileStore(tmp_path / "conversations.json")


def test_simple_chat_streams_a_non_empty_reply(local_config):
    chat = Chat(PlainEngine.from_defaults(local_config))
    deltas = list(chat.send("Say hello."))
    assert len(deltas) > 1, "the reply should arrive in several streamed pieces"
    assert "".join(deltas).strip()
    assert [m.role for m in chat.messages] == [MessageRole.USER, MessageRole.ASSISTANT]
    assert chat.messages[1].content == "".join(deltas).strip()
    assert chat.messages[1].model == LOCAL_MODEL_ALIAS


def test_memory_chat_streams_a_non_empty_reply_and_remembers_it(local_config, store):
    chat = Chat(AgentEngine.from_defaults(local_config), store)
    deltas = list(chat.send("Hello, who are you?"))
    assert len(deltas) > 1 and "".join(deltas).strip()
    remembered = chat.memory().get_all()
    assert [m.role for m in remembered] == [MessageRole.USER, MessageRole.ASSISTANT]
    assert remembered[0].content == "Hello, who are you?"


def test_loaded_conversation_rebuilds_memory_in_order_before_the_new_turn(local_config, local_server, store):
    store.save("Ada", STORED)
    proxy = RecordingProxy(local_server.base_url).start()
    try:
        chat = Chat(AgentEngine.from_defaults(replace(local_config, base_url=proxy.base_url)), store)
        chat.load("Ada")
        before = [(m.role, m.content) for m in chat.memory().get_all()]
        assert before == [(m.role, m.content) for m in STORED]
        reply = "".join(chat.send("What is my name?"))
    finally:
        proxy.stop()
    assert reply.strip()
    # the agent sent the stored history, in order, then the new question
    sent = [(m["role"], m["content"]) for m in proxy.bodies[-1]["messages"] if m["role"] != "system"]
    assert sent == [(m.role.value, m.content) for m in STORED] + [("user", "What is my name?")]
    after = chat.memory().get_all()
    assert [m.content for m in after[:4]] == [m.content for m in STORED]
    assert after[4].content == "What is my name?" and len(after) == 6


def test_named_conversation_saves_user_message_before_reply_and_reply_after(local_config, store):
    chat = Chat(AgentEngine.from_defaults(local_config), store)
    chat.save_as("turns")
    reply = chat.send("Count to three.")
    first = next(reply)  # the model has started answering
    on_disk = json.loads(store.path.read_text(encoding="utf-8"))["turns"]
    assert [m["content"] for m in on_disk] == ["Count to three."]
    rest = "".join(reply)
    on_disk = json.loads(store.path.read_text(encoding="utf-8"))["turns"]
    assert [m["role"] for m in on_disk] == ["user", "assistant"]
    assert on_disk[1]["content"] == (first + rest).strip() and "incomplete" not in on_disk[1]


def test_reply_cut_off_by_the_reader_is_saved_as_incomplete(local_config, store):
    chat = Chat(AgentEngine.from_defaults(local_config), store)
    chat.save_as("cut")
    reply = chat.send("Tell me a long story about a dragon.")
    next(reply)
    reply.close()  # what a Streamlit rerun or stop does to a running stream
    on_disk = json.loads(store.path.read_text(encoding="utf-8"))["cut"]
    assert on_disk[-1]["role"] == "assistant" and on_disk[-1]["incomplete"] is True
    assert [m.content for m in chat.memory().get_all()] == ["Tell me a long story about a dragon."]


@pytest.mark.parametrize(
    "provider, model, cls",
    [
        ("groq", "llama-3.3-70b-versatile", Groq),
        ("openai", "gpt-4o-mini", OpenAI),
        ("openai_like", "any-model", OpenAILike),
    ],
)
def test_each_provider_class_streams_over_real_http(local_server, store, provider, model, cls):
    config = LLMConfig(
        provider=provider,
        model=model,
        base_url=local_server.base_url,
        api_key=fake(OPENAI, "test-not-a-real-key-0000"),
        max_tokens=30,
    )
    assert type(build_llm(config)) is cls
    chat = Chat(AgentEngine.from_defaults(config), store)
    reply = "".join(chat.send("Say one word."))
    assert reply.strip()
    assert chat.messages[-1].model == model


def test_unreachable_server_gives_a_clear_error_and_keeps_the_message(store):
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    chat = Chat(AgentEngine.from_defaults(LLMConfig(provider="openai_like", model="m", base_url=url, timeout=5)), store)
    chat.save_as("kept")
    with pytest.raises(ChatError, match="Could not reach") as caught:
        "".join(chat.send("Are you there?"))
    assert url in str(caught.value)
    assert [m.content for m in chat.messages] == ["Are you there?"]
    assert json.loads(store.path.read_text(encoding="utf-8"))["kept"][0]["content"] == "Are you there?"
    assert "Traceback" not in str(caught.value)


def test_memory_token_limit_leaves_room_for_the_reply():
    assert memory_token_limit(4096, 512) == int((4096 - 512) * 0.75)
    assert memory_token_limit(1024, 2000) == 256
