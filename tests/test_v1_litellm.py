"""/v1 with litellm, as its documentation shows for an OpenAI-compatible server (``openai/<model>``
with ``api_base``): completion, streaming, a tool round trip, a json_schema response format, usage
and a reply cut by max_tokens. The provider is scripted (tests/v1_server.py); every answer is
checked against OpenAI's schemas."""

from __future__ import annotations

import json
import os

import pytest

from tests.scripted_server import Call, Say
from tests.v1_server import PERSON_SCHEMA, V1, WEATHER_TOOL

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # never fetch the price list
litellm = pytest.importorskip("litellm")


def complete(v1: V1, **request: object):
    return litellm.completion(model="openai/scripted", api_base=v1.base_url, api_key=v1.key, num_retries=0, **request)


def test_completion_has_usage_and_finish_reason(v1):
    v1.provider.play([Say("Hello from the script.")])
    reply = complete(v1, messages=[{"role": "user", "content": "Hi there"}])
    assert reply.choices[0].message.content == "Hello from the script."
    assert reply.usage.completion_tokens == 4 and reply.choices[0].finish_reason == "stop"


def test_a_small_max_tokens_reports_length(v1):
    v1.provider.play([Say("Once upon a time there was a dragon.")])
    reply = complete(v1, messages=[{"role": "user", "content": "A story"}], max_tokens=3)
    assert reply.choices[0].message.content == "Once upon a" and reply.choices[0].finish_reason == "length"


def test_streaming_with_usage(v1):
    v1.provider.play([Say("Streamed words come one by one.")])
    chunks = list(
        complete(
            v1, messages=[{"role": "user", "content": "Stream"}], stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Streamed words come one by one."
    assert any(getattr(c, "usage", None) and c.usage.completion_tokens == 6 for c in chunks)


def test_a_tool_round_trip(v1):
    v1.provider.play([Call("get_weather", '{"city": "Lisbon"}'), Say("It is sunny in Lisbon.")])
    question = [{"role": "user", "content": "Weather in Lisbon?"}]
    asked = complete(v1, messages=question, tools=[WEATHER_TOOL])
    (call,) = asked.choices[0].message.tool_calls
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Lisbon"}
    answered = [*question, asked.choices[0].message]  # as litellm's documentation appends it
    answered.append({"role": "tool", "tool_call_id": call.id, "content": "sunny"})
    final = complete(v1, messages=answered, tools=[WEATHER_TOOL])
    assert final.choices[0].message.content == "It is sunny in Lisbon."


def test_a_json_schema_response_format(v1):
    v1.provider.play([Say('{"name": "Ada", "age": 36}')])
    reply = complete(
        v1,
        messages=[{"role": "user", "content": "Who?"}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": PERSON_SCHEMA, "strict": True},
        },
    )
    assert json.loads(reply.choices[0].message.content) == {"name": "Ada", "age": 36}
    assert v1.provider.bodies[-1]["response_format"]["json_schema"]["schema"] == PERSON_SCHEMA
