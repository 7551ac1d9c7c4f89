"""The agent's tools on the real local model (llama-cpp-python's chatml-function-calling format on
a second server of the bundled model), the sandbox's limits, JSON mode, and memory rebuilt from
saved tool calls."""

import json
from dataclasses import replace

import pytest
from llama_index.llms.openai.utils import to_openai_message_dicts

from controller.chat import Chat
from controller.context import build_memory
from controller.engines import AgentEngine
from controller.llama_adapter import MAX_TOOL_ROUNDS, build_agent, drain
from controller.tools import ToolBox, ToolFailure, calculate, current_time
from model.json_store import JsonFileStore
from model.message import Message, ToolCall
from tests.kb_files import txt
from tests.scripted_server import Call, Say, ScriptedServer
from utils.embeddings import build_embed_model
from utils.knowledge_bases import KnowledgeBases
from utils.llm import build_llm
from utils.local_server import TOOL_CHAT_FORMAT, LocalServer
from utils.providers import LLMConfig
from utils.sandbox import isolation


@pytest.fixture(scope="module")
def tool_server():
    server = LocalServer.ensure(None, context_window=4096, chat_format=TOOL_CHAT_FORMAT)
    yield server
    server.stop()


@pytest.fixture
def tool_config(local_config, tool_server):
    """Greedy, so the small model's choices are the same every run."""
    return replace(
        local_config,
        tools_base_url=tool_server.base_url,
        temperature=0.0,
        max_tokens=60,
        system_prompt="You are Parley, a helpful assistant.",  # the app's default
    )


def memory_chat(config, tmp_path, tools, toolbox=None):
    store = JsonFileStore(tmp_path / "conversations.json")
    chat = Chat(AgentEngine.from_defaults(config, toolbox or ToolBox()), store, auto_title=True)
    chat.set_tools(tools)
    return chat


# ----- the tools alone -------------------------------------------------------------------


def test_calculator_is_safe_arithmetic():
    assert calculate("17/100 * 250") == "42.5"
    assert calculate("2^10") == "1024"
    assert calculate("1,234 * 2") == "2468"
    with pytest.raises(ToolFailure, match="Division by zero"):
        calculate("1/0")
    with pytest.raises(ToolFailure, match="Not an arithmetic expression"):
        calculate("__import__('os').system('true')")


def test_clock_uses_the_given_time_zone():
    assert "(UTC+09:00)" in current_time("Asia/Tokyo")
    assert "UTC" in current_time("Not/AZone")


# ----- the agent on the local model -------------------------------------------------------


def test_calculator_call_is_made_saved_and_shown_to_the_model(tool_config, tmp_path):
    chat = memory_chat(tool_config, tmp_path, ["calculator"])
    seen = []
    reply = "".join(chat.send("Use the calculator to compute 1234*5678.").listen(seen.append))
    *retried, call = chat.messages[-1].tool_calls  # the small model may first write a bad call, then retry
    assert call.name == "calculator" and call.result == "7006652" and not call.error
    assert all(c.error for c in retried) and len(retried) < 2
    # each call was reported when it started (no result yet) and when it ended
    assert [event.call.result for event in seen][-2:] == [None, "7006652"] and len(seen) == 2 * (len(retried) + 1)
    assert reply.strip()
    stored = json.loads((tmp_path / "conversations.json").read_text())
    assert stored[chat.name][1]["tool_calls"][-1]["result"] == "7006652"


def test_an_empty_reply_with_tools_falls_back_to_a_plain_streamed_answer(tool_config, tmp_path):
    chat = memory_chat(tool_config, tmp_path, ["calculator"])
    deltas = list(chat.send("Hello"))
    assert chat.messages[-1].tool_calls == ()
    assert len(deltas) > 1 and "".join(deltas).strip()  # streamed: more than one delta


@pytest.mark.skipif(isolation() != "full", reason="needs bubblewrap")
def test_the_local_model_asked_for_a_bar_chart_with_run_python_on_gets_a_chart(tool_config, tmp_path):
    """The smoke test on the real model: SmolLM2-135M writes a few lines of matplotlib (greedy, it
    plots and calls ``plt.show()``, not a correct bar chart); the figure it leaves open is the
    chart, shown and stored like a saved one."""
    chat = memory_chat(replace(tool_config, max_tokens=200), tmp_path, ["python"])
    list(chat.send("Use run_python with matplotlib to make a bar chart of 3, 5 and 2 and save it as chart.png."))
    drawn = [c for c in chat.messages[-1].tool_calls if c.name == "run_python" and c.images]
    assert drawn, chat.messages[-1].tool_calls
    (image, *_) = drawn[0].images
    assert image.mime == "image/png" and chat.attachments.attachment(image.sha256) is not None
    stored = json.loads((tmp_path / "conversations.json").read_text())
    assert any(c.get("images") for c in stored[chat.name][1]["tool_calls"])


def scripted_config(server: ScriptedServer) -> LLMConfig:
    return LLMConfig(provider="openai_like", model="scripted", base_url=server.base_url, max_tokens=60)


def test_a_failed_call_is_given_back_to_the_model_which_tries_again(tmp_path):
    server = ScriptedServer(
        [
            Call("calculator", '{"expression": "3 apples + 4 pears"}'),
            Call("calculator", '{"expression": "3 + 4"}'),
            Say("You have 7 pieces of fruit."),
        ]
    ).start()
    try:
        chat = memory_chat(scripted_config(server), tmp_path, ["calculator"])
        reply = "".join(chat.send("How many fruits are 3 apples plus 4 pears?"))
    finally:
        server.stop()
    first, second = chat.messages[-1].tool_calls
    assert first.error and first.result.startswith("Error: Not an arithmetic expression") and first.round == 0
    assert (second.error, second.result, second.round) == (False, "7", 1)
    assert reply == "You have 7 pieces of fruit."
    # the model was given the error as the call's result before it tried again
    answered = [m for m in server.bodies[1]["messages"] if m["role"] == "tool"]
    assert answered[-1]["content"].startswith("Error: Not an arithmetic expression")


def test_rounds_of_tool_calls_are_bounded_then_the_model_must_answer_in_words(tmp_path):
    server = ScriptedServer([Call("calculator", '{"expression": "1 + 1"}')] * MAX_TOOL_ROUNDS + [Say("Two.")]).start()
    try:
        chat = memory_chat(scripted_config(server), tmp_path, ["calculator"])
        reply = "".join(chat.send("Add one and one, again and again."))
    finally:
        server.stop()
    assert [c.round for c in chat.messages[-1].tool_calls] == list(range(MAX_TOOL_ROUNDS))
    assert [bool(b.get("tools")) for b in server.bodies] == [True] * MAX_TOOL_ROUNDS + [False]
    assert reply == "Two."


def test_knowledge_base_tool_answers_a_made_up_fact_with_its_source(tool_config, tmp_path):
    kbs = KnowledgeBases(tmp_path / "kbs", build_embed_model)
    kbs.create("plant notes").add_files([("valves.txt", txt())])
    chat = memory_chat(tool_config, tmp_path, ["kb:plant notes"], ToolBox(kbs))
    "".join(chat.send("Search my notes: when does the Zorblax valve open?"))
    (call, *_) = chat.messages[-1].tool_calls
    assert call.name == "search_plant_notes" and not call.error
    assert "zorblax" in json.loads(call.arguments)["question"].lower()
    assert "42 kPa" in call.result
    assert call.sources[0].file_name == "valves.txt" and "42 kPa" in call.sources[0].text


def test_json_mode_on_the_local_model_gives_valid_json(tool_config, tmp_path):
    chat = memory_chat(replace(tool_config, json_mode=True, max_tokens=80), tmp_path, [])
    reply = "".join(chat.send("Give me a JSON object with the keys name and age."))
    assert isinstance(json.loads(reply), dict) and chat.messages[-1].json_mode


def test_loaded_tool_calls_rebuild_a_memory_the_agent_accepts(tool_config, tmp_path):
    calls = (
        ToolCall(id="call_1", name="calculator", arguments='{"expression": "6*7"}', result="42", round=0),
        ToolCall(id="call_2", name="calculator", arguments='{"expression": "x"}', result="Error: bad", round=1),
    )
    messages = [
        Message.user("What is 6 times 7?"),
        replace(Message.assistant("It is 42."), tool_calls=calls),
    ]
    restored = [Message.from_dict(m.to_dict()) for m in messages]
    assert restored == messages
    memory = build_memory(restored, None, 2000)
    sent = to_openai_message_dicts(memory.get())
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
    # OpenAI's rule (its API refuses "orphan" tool messages): each tool message answers a call of
    # the assistant message just before its run of tool messages.
    for index, message in enumerate(sent):
        if message["role"] == "tool":
            owner = next(m for m in reversed(sent[:index]) if m["role"] != "tool")
            assert message["tool_call_id"] in [c["id"] for c in owner["tool_calls"]]
    # The local model takes it, with its tool server and without (llama-cpp-python's server
    # refuses tool calls without text; the local LLM sends them as text).
    for config in (replace(tool_config, tools_base_url=None), tool_config):
        llm = build_llm(config)
        agent = build_agent(llm, build_memory(restored, llm, 2000), None, ToolBox().build(["calculator"], llm))
        assert "".join(drain(agent.stream_chat("Thanks! And what is 2+2?"))).strip()
    store = JsonFileStore(tmp_path / "conversations.json")
    store.save("with tools", restored)
    chat = Chat(AgentEngine.from_defaults(tool_config, ToolBox()), store)
    chat.load("with tools")
    assert chat.tools == ()  # none were stored on its user message
    assert "".join(chat.send("Thanks!")).strip()
