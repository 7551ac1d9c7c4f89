"""Assistants on the turn runner and the chat server: what an assistant's turn sends to the model
(the exact system prompt and tools, seen by a recording proxy in front of the real local model),
over the websocket (``POST /token``'s ``assistant``), over ``/v1`` (``assistant:<id>``), and the
``/assistants`` resource."""

from __future__ import annotations

from dataclasses import replace

import openai
import pytest

from controller.assistants import apply_assistant, assistant_config
from controller.chat import Chat
from controller.engines import AgentEngine
from controller.errors import ChatError
from controller.tools import ToolBox
from model.assistant import BUILT_INS, Assistant
from model.json_store import JsonFileStore
from settings import Settings
from tests.fault_server import RecordingProxy
from tests.test_api import KEY, TIMEOUT, start_api, stop_api, token_for, ws_answer
from utils.local_server import LOCAL_MODEL_ALIAS
from utils.providers import LLMConfig

TUTOR = Assistant(
    id="",
    name="Maths tutor",
    emoji="🧮",
    description="Checks sums.",
    instructions="You are a maths tutor. Use the calculator for every sum.",
    temperature=0.0,
    tools=("calculator", "kb:gone"),
    starters=("What is 17 * 23?",),
)


@pytest.fixture(scope="module")
def proxy(local_server):
    """A recording proxy in front of the real local model."""
    server = RecordingProxy(local_server.base_url).start()
    yield server
    server.stop()


def proxied(proxy: RecordingProxy) -> dict[str, str]:
    """Settings that send every model call through ``proxy`` (as an OpenAI-compatible server)."""
    return {"LLM_PROVIDER": "openai_like", "LLM_BASE_URL": proxy.base_url, "LLM_MODEL": LOCAL_MODEL_ALIAS}


def sent_system_and_tools(body: dict) -> tuple[str | None, list[str]]:
    messages = body["messages"]
    system = messages[0]["content"] if messages[0]["role"] == "system" else None
    return system, [t["function"]["name"] for t in body.get("tools", [])]


def test_an_assistant_sets_instructions_model_temperature_and_its_existing_tools():
    base = LLMConfig(
        provider="local", model="smollm2", base_url="http://127.0.0.1:1/v1", temperature=0.7, max_tokens=99
    )
    settings = Settings(_env_file=None, openai_api_key="sk-test")
    applied = apply_assistant(TUTOR, base, settings, None, ["calculator", "clock", "kb:notes"])
    assert applied.config.system_prompt == TUTOR.instructions and applied.config.temperature == 0.0
    assert applied.config.provider == "local" and applied.config.max_tokens == 99
    assert applied.tools == ("calculator",)
    assert applied.notes == (
        "Maths tutor's knowledge base 'gone' no longer exists (or is not available here), so it is skipped.",
    )
    other = assistant_config(Assistant(id="x", name="X", provider="openai", model="gpt-4o-mini"), base, settings, None)
    assert (other.provider, other.model, other.api_key, other.max_tokens) == ("openai", "gpt-4o-mini", "sk-test", 99)
    librarian = next(a for a in BUILT_INS if a.id == "librarian")
    assert apply_assistant(librarian, base, settings, None, ["calculator", "kb:a", "kb:b"]).tools == ("kb:a", "kb:b")
    assert "there is none yet" in apply_assistant(librarian, base, settings, None, ["calculator"]).notes[0]


def test_a_chat_with_an_assistant_sends_its_instructions_and_tools_and_remembers_it(proxy, tmp_path):
    store = JsonFileStore(tmp_path / "conversations.json")
    made = store.create_assistant(TUTOR)
    base = LLMConfig(provider="openai_like", model=LOCAL_MODEL_ALIAS, base_url=proxy.base_url, max_tokens=40)
    settings = Settings(_env_file=None)
    toolbox = ToolBox()
    applied = apply_assistant(made, base, settings, None, toolbox.available())
    chat = Chat(AgentEngine.from_defaults(applied.config, toolbox), store, auto_title=True)
    chat.set_assistant(made.id)
    chat.set_tools(applied.tools)
    before = len(proxy.bodies)
    "".join(chat.send("What is 2 + 2?"))
    system, tools = sent_system_and_tools(proxy.bodies[before])
    assert system == TUTOR.instructions and tools == ["calculator"]
    again = Chat(AgentEngine.from_defaults(base), store)
    again.load(chat.name)
    assert again.assistant == made.id and store.get(chat.name)[0].assistant_id == made.id


def test_instructions_over_the_context_budget_are_refused_with_their_size(local_config, tmp_path):
    config = replace(local_config, system_prompt="Be brief. " * 2500)
    chat = Chat(AgentEngine.from_defaults(config), JsonFileStore(tmp_path / "c.json"))
    with pytest.raises(ChatError) as refused:
        chat.send("Hello")
    assert "instructions" in str(refused.value) and "tokens" in str(refused.value)
    assert refused.value.refused_text == "Hello" and chat.messages == []


# ----- the chat server -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def api(proxy, tmp_path_factory):
    server = start_api(tmp_path_factory.mktemp("api-assistants"), None, **proxied(proxy))
    yield server
    stop_api(server)


def test_the_assistants_resource_creates_reads_updates_and_deletes(api):
    with api.client() as client:
        listed = client.get("/assistants").json()["assistants"]
        assert [a["id"] for a in listed] == ["writing-helper", "python-tutor", "librarian"]
        created = client.post("/assistants", json={"name": "Poet", "instructions": "Answer in verse."})
        assert created.status_code == 201 and created.json()["id"] == "poet"
        clash = client.post("/assistants", json={"name": "POET"})
        empty = client.post("/assistants", json={"name": "   "})
        updated = client.put(
            "/assistants/poet", json={"name": "Poet", "instructions": "Answer in haiku.", "emoji": "🌸"}
        )
        built_in = client.put("/assistants/python-tutor", json={"name": "Mine"})
        deleted = client.delete("/assistants/poet")
        missing = client.get("/assistants/poet")
        no_key = api.client(key=None).get("/assistants")
    assert clash.status_code == 409 and "already exists" in clash.json()["error"]["message"]
    assert empty.status_code == 400 and "name" in empty.json()["error"]["message"]
    assert updated.status_code == 200 and updated.json()["instructions"] == "Answer in haiku."
    assert updated.json()["created"] == created.json()["created"]
    assert built_in.status_code == 409 and deleted.status_code == 204 and missing.status_code == 404
    assert no_key.status_code == 401


def test_v1_lists_assistants_and_answers_as_one_with_its_instructions_first(api, proxy):
    with api.client() as client:
        client.post("/assistants", json={"name": "Pirate", "instructions": "Talk like a pirate.", "tools": ["clock"]})
    sdk = openai.OpenAI(base_url=f"{api.url}/v1", api_key=KEY, max_retries=0, timeout=TIMEOUT)
    ids = [m.id for m in sdk.models.list().data]
    assert "assistant:pirate" in ids and "assistant:python-tutor" in ids
    before = len(proxy.bodies)
    answer = sdk.chat.completions.create(
        model="assistant:pirate",
        messages=[{"role": "system", "content": "Be short."}, {"role": "user", "content": "Hello!"}],
        max_tokens=30,
    )
    assert answer.choices[0].message.content
    system, tools = sent_system_and_tools(proxy.bodies[before])
    assert system == "Talk like a pirate.\n\nBe short." and tools == ["current_time"]
    with pytest.raises(openai.BadRequestError, match="send no tools"):
        sdk.chat.completions.create(
            model="assistant:pirate",
            messages=[{"role": "user", "content": "Hi"}],
            tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        )
    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.create(model="assistant:nobody", messages=[{"role": "user", "content": "Hi"}])


def test_a_websocket_token_with_an_assistant_sends_its_instructions_and_tools(api, proxy):
    with api.client() as client:
        client.post("/assistants", json={"name": "Clockwork", "instructions": "You tell the time.", "tools": ["clock"]})
        response = client.post("/token", json={"name": "Timely", "assistant": "clockwork"})
        unknown = client.post("/token", json={"name": "Other", "assistant": "nobody"})
    assert response.status_code == 200 and response.json()["assistant"] == "clockwork"
    assert unknown.status_code == 404
    token = response.json()["token"]
    before = len(proxy.bodies)
    done = ws_answer(api.ws_url, token, "What time is it?")
    assert done["type"] == "done", done
    system, tools = sent_system_and_tools(proxy.bodies[before])
    assert system == "You tell the time." and tools == ["current_time"]
    assert api.saved()["Timely"][0]["assistant"] == "clockwork"
    assert token_for(api, "Plain")  # a token without an assistant still works


def test_a_queued_turn_is_answered_by_the_worker_as_the_assistant(proxy, redis_server, local_server, tmp_path):
    from tests.test_queue import Worker

    redis_server.ensure_running()
    redis_server.flush()
    folder = tmp_path / "queued"
    server = start_api(folder, None, REDIS_URL=redis_server.url(), **proxied(proxy))
    worker = Worker(folder, local_server, redis_server.url(), **proxied(proxy))
    try:
        with server.client() as client:
            client.post("/assistants", json={"name": "Owl", "instructions": "You are a wise owl.", "tools": ["clock"]})
            token = client.post("/token", json={"name": "Night", "assistant": "owl"}).json()["token"]
        before = len(proxy.bodies)
        done = ws_answer(server.ws_url, token, "Who are you?")
    finally:
        worker.stop()
        stop_api(server)
    assert done["type"] == "done", done
    system, tools = sent_system_and_tools(proxy.bodies[before])
    assert system == "You are a wise owl." and tools == ["current_time"]
    assert server.saved()["Night"][0]["assistant"] == "owl"
