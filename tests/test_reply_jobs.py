"""Replies in the background (``controller.reply_job``) and "Continue" for a reply cut at the token
limit: the controller layer, on the real local model where the model's own length decides, and on
the scripted server where a test needs a cut at a known place."""

from __future__ import annotations

from dataclasses import replace

import pytest

from controller.chat import CONTINUE_PROMPT, Chat
from controller.engines import AgentEngine, KnowledgeEngine, PlainEngine
from controller.errors import ChatError
from model.json_store import JsonFileStore
from tests.scripted_server import Say, ScriptedServer
from utils.providers import LLMConfig

LONG = "Write a very long story about a dragon, in twenty chapters of 500 words each."
WAIT = 120.0  # seconds: a bound for a reply on the real model, not a measurement


@pytest.fixture
def store(tmp_path) -> JsonFileStore:
    return JsonFileStore(tmp_path / "conversations.json")


@pytest.fixture
def scripted():
    server = ScriptedServer([Say("one two three four five six seven eight")]).start()
    yield server
    server.stop()


def scripted_config(server: ScriptedServer, max_tokens: int) -> LLMConfig:
    return LLMConfig(
        provider="openai_like", model="scripted", base_url=server.base_url, api_key="k", max_tokens=max_tokens
    )


@pytest.mark.parametrize("engine", [PlainEngine, AgentEngine])
def test_a_reply_cut_at_the_token_limit_is_marked_and_continue_extends_the_same_message(scripted, store, engine):
    chat = Chat(engine.from_defaults(scripted_config(scripted, max_tokens=3)), store, auto_title=True)
    list(chat.send("Count to eight."))
    (question, reply) = chat.messages
    assert reply.cut and reply.content == "one two three" and not reply.incomplete
    assert store.get(chat.name)[-1].cut  # saved with it ("cut": true)

    scripted.play([Say(" four five six")])
    chat.use(engine.from_defaults(scripted_config(scripted, max_tokens=100)))
    list(chat.continue_reply())
    (question, reply) = chat.messages  # still one reply: the same message, extended
    assert reply.content == "one two three four five six" and not reply.cut
    assert store.get(chat.name) == chat.messages
    sent = scripted.bodies[-1]["messages"]  # the cut reply, then the hidden prompt; never saved
    assert [m["role"] for m in sent[-2:]] == ["assistant", "user"]
    assert sent[-2]["content"] == "one two three" and sent[-1]["content"] == CONTINUE_PROMPT
    assert CONTINUE_PROMPT not in str(store.load_all())


def test_continue_refuses_a_reply_that_was_not_cut(scripted, store):
    chat = Chat(PlainEngine.from_defaults(scripted_config(scripted, max_tokens=100)), store)
    list(chat.send("Count to eight."))
    assert not chat.messages[-1].cut
    with pytest.raises(ChatError, match="no reply cut"):
        chat.continue_reply()


def test_a_knowledge_base_reply_reports_its_finish_reason_too(scripted, tmp_path):
    from utils.embeddings import build_embed_model
    from utils.knowledge_bases import KnowledgeBases

    kb = KnowledgeBases(tmp_path / "kbs", build_embed_model).create("notes")
    kb.add_files([("counting.txt", b"Counting: one two three four five six seven eight.")])
    chat = Chat(KnowledgeEngine.from_defaults(scripted_config(scripted, max_tokens=3), kb, top_k=1, threshold=0.0))
    list(chat.send("What does counting say?"))
    assert chat.messages[-1].cut and chat.messages[-1].content == "one two three"


def test_the_real_model_stopping_at_its_token_limit_shows_continue(local_config, store):
    chat = Chat(AgentEngine.from_defaults(replace(local_config, max_tokens=12, temperature=0.0)), store)
    list(chat.send(LONG))
    assert chat.messages[-1].cut  # llama-cpp-python's server said finish_reason "length"
    before = chat.messages[-1].content
    chat.use(AgentEngine.from_defaults(replace(local_config, max_tokens=12, temperature=0.0)))
    list(chat.continue_reply())
    assert len(chat.messages) == 2 and chat.messages[-1].content.startswith(before)
    assert len(chat.messages[-1].content) > len(before)


def test_a_background_reply_ends_and_is_saved_with_nobody_reading_it(local_config, store):
    chat = Chat(PlainEngine.from_defaults(replace(local_config, max_tokens=40)), store, auto_title=True)
    job = chat.in_background(chat.send("Name three colours."))
    assert chat.replying
    with pytest.raises(ChatError, match="still being written"):
        chat.load("anything")  # the reply would land in the other conversation
    assert job.wait(WAIT) and not chat.replying
    assert job.reply is not None and not job.reply.stopped and job.error is None
    assert store.get(chat.name)[-1].content == job.reply.content == chat.messages[-1].content


def test_stop_keeps_the_text_so_far_marked_stopped(local_config, store):
    chat = Chat(PlainEngine.from_defaults(replace(local_config, max_tokens=2000, temperature=0.0)), store)
    chat.save_as("Story")
    job = chat.in_background(chat.send(LONG))
    while len(job.text.split()) < 5 and not job.done:
        job.wait(0.05)
    assert job.stop(wait=WAIT)
    reply = chat.messages[-1]
    assert reply.stopped and reply.incomplete and reply.content.startswith(job.text.strip()[:10])
    assert store.get("Story")[-1].stopped


def test_a_regenerated_reply_runs_in_the_background_and_can_be_stopped(local_config, store):
    chat = Chat(PlainEngine.from_defaults(replace(local_config, max_tokens=20, temperature=0.0)), store)
    chat.save_as("Story")
    list(chat.send(LONG))
    first = chat.messages[-1].content
    chat.use(PlainEngine.from_defaults(replace(local_config, max_tokens=2000, temperature=0.0)))
    job = chat.in_background(chat.regenerate())
    while len(job.text.split()) < 5 and not job.done:
        job.wait(0.05)
    assert job.stop(wait=WAIT)
    reply = chat.messages[-1]
    assert reply.stopped and reply.version_index == 1 and reply.versions[0][0].content == first


def test_a_failure_in_the_background_is_kept_as_a_sentence(store):
    config = LLMConfig(provider="openai_like", model="m", base_url="http://127.0.0.1:9/v1", api_key="k")
    chat = Chat(PlainEngine.from_defaults(config), store)
    job = chat.in_background(chat.send("Hello?"))
    assert job.wait(WAIT)
    assert isinstance(job.error, ChatError) and "127.0.0.1:9" in str(job.error)
    assert chat.pending_user_text() == "Hello?"  # the message stays, waiting for Retry
