"""/v1 with LangChain's ChatOpenAI, as its documentation shows: invoke, stream, bind_tools with a tool
round trip, with_structured_output (json_schema, its default), usage_metadata, and a reply cut by
max_tokens. The provider is scripted (tests/v1_server.py); every answer is checked against OpenAI's
schemas."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from tests.scripted_server import Call, Say
from tests.v1_server import V1

langchain_openai = pytest.importorskip("langchain_openai")
from langchain_core.messages import HumanMessage, ToolMessage  # noqa: E402
from langchain_core.tools import tool  # noqa: E402


def chat_model(v1: V1, **options: object) -> langchain_openai.ChatOpenAI:
    return langchain_openai.ChatOpenAI(model="scripted", base_url=v1.base_url, api_key=v1.key, max_retries=0, **options)


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


class Person(BaseModel):
    """A person."""

    name: str
    age: int


def test_invoke_has_usage_and_finish_reason(v1):
    v1.provider.play([Say("Hello from the script.")])
    reply = chat_model(v1).invoke("Hi there")
    assert reply.content == "Hello from the script."
    assert reply.usage_metadata["input_tokens"] == 2 and reply.usage_metadata["output_tokens"] == 4
    assert reply.response_metadata["finish_reason"] == "stop"


def test_a_small_max_tokens_reports_length(v1):
    v1.provider.play([Say("Once upon a time there was a dragon.")])
    reply = chat_model(v1, max_tokens=3).invoke("A story")
    assert reply.content == "Once upon a" and reply.response_metadata["finish_reason"] == "length"


def test_stream_with_usage(v1):
    v1.provider.play([Say("Streamed words come one by one.")])
    chunks = list(chat_model(v1, stream_usage=True).stream("Stream please"))
    whole = chunks[0]
    for chunk in chunks[1:]:
        whole += chunk
    assert whole.content == "Streamed words come one by one."
    assert whole.usage_metadata["output_tokens"] == 6


def test_bind_tools_round_trip(v1):
    v1.provider.play([Call("get_weather", '{"city": "Lisbon"}'), Say("It is sunny in Lisbon.")])
    model = chat_model(v1).bind_tools([get_weather])
    question = HumanMessage("Weather in Lisbon?")
    asked = model.invoke([question])
    (call,) = asked.tool_calls
    assert call["name"] == "get_weather" and call["args"] == {"city": "Lisbon"}
    result = ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"])
    final = model.invoke([question, asked, result])
    assert final.content == "It is sunny in Lisbon."
    assert v1.provider.bodies[-1]["messages"][-1]["content"] == "sunny in Lisbon"


def test_structured_output_by_json_schema_and_by_function_calling(v1):
    v1.provider.play([Say('{"name": "Ada", "age": 36}')])
    assert chat_model(v1).with_structured_output(Person).invoke("Who?") == Person(name="Ada", age=36)
    assert v1.provider.bodies[-1]["response_format"]["type"] == "json_schema"
    v1.provider.play([Call("Person", '{"name": "Grace", "age": 45}')])
    structured = chat_model(v1).with_structured_output(Person, method="function_calling")
    assert structured.invoke("Who?") == Person(name="Grace", age=45)
