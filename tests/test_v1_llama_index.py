"""/v1 with llama-index's OpenAILike, as its documentation shows: chat, stream_chat, chat_with_tools
with a tool round trip, structured prediction, usage in the raw answer, and a reply cut by
max_tokens. The provider is scripted (tests/v1_server.py); every answer is checked against OpenAI's
schemas."""

from __future__ import annotations

from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.tools import FunctionTool
from llama_index.llms.openai_like import OpenAILike
from pydantic import BaseModel

from tests.scripted_server import Call, Say
from tests.v1_server import V1


def llm(v1: V1, **options: object) -> OpenAILike:
    return OpenAILike(
        model="scripted",
        api_base=v1.base_url,
        api_key=v1.key,
        is_chat_model=True,
        is_function_calling_model=True,
        max_retries=0,
        **options,
    )


def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


class Person(BaseModel):
    """A person."""

    name: str
    age: int


def test_chat_has_usage_and_finish_reason(v1):
    v1.provider.play([Say("Hello from the script.")])
    reply = llm(v1).chat([ChatMessage(role=MessageRole.USER, content="Hi there")])
    assert reply.message.content == "Hello from the script."
    assert reply.raw.usage.total_tokens == 6 and reply.raw.choices[0].finish_reason == "stop"


def test_a_small_max_tokens_reports_length(v1):
    v1.provider.play([Say("Once upon a time there was a dragon.")])
    reply = llm(v1, max_tokens=3).chat([ChatMessage(role=MessageRole.USER, content="A story")])
    assert reply.message.content == "Once upon a" and reply.raw.choices[0].finish_reason == "length"


def test_stream_chat(v1):
    v1.provider.play([Say("Streamed words come one by one.")])
    pieces = [r.delta for r in llm(v1).stream_chat([ChatMessage(role=MessageRole.USER, content="Stream please")])]
    assert "".join(p or "" for p in pieces) == "Streamed words come one by one." and len(pieces) > 3


def test_chat_with_tools_round_trip(v1):
    v1.provider.play([Call("get_weather", '{"city": "Lisbon"}'), Say("It is sunny in Lisbon.")])
    weather = FunctionTool.from_defaults(fn=get_weather)
    model = llm(v1)
    asked = model.chat_with_tools([weather], user_msg="Weather in Lisbon?")
    (call,) = model.get_tool_calls_from_response(asked)
    assert call.tool_name == "get_weather" and call.tool_kwargs == {"city": "Lisbon"}
    history = [ChatMessage(role=MessageRole.USER, content="Weather in Lisbon?"), asked.message]
    history.append(
        ChatMessage(
            role=MessageRole.TOOL,
            content=get_weather(**call.tool_kwargs),
            additional_kwargs={"tool_call_id": call.tool_id, "name": call.tool_name},
        )
    )
    final = model.chat_with_tools([weather], chat_history=history)
    assert final.message.content == "It is sunny in Lisbon."


def test_structured_predict_through_a_tool_call(v1):
    from llama_index.core.prompts import PromptTemplate

    v1.provider.play([Call("Person", '{"name": "Ada", "age": 36}')])
    person = llm(v1).structured_predict(Person, PromptTemplate("Who wrote the first program?"))
    assert person == Person(name="Ada", age=36)
