"""/v1 with the openai SDK, sync and async, used as its documentation shows: chat, streaming, a tool
round trip, structured output, usage and a reply cut by max_tokens; and what a client sends is
honoured or refused with a 400 naming it. The provider is scripted (tests/v1_server.py); every answer
is checked against OpenAI's schemas. The last test runs on the real local model."""

from __future__ import annotations

import asyncio
import json

import httpx
import openai
import pytest
from pydantic import BaseModel

from tests.scripted_server import Call, Say
from tests.v1_server import V1, WEATHER_TOOL


def client(v1: V1) -> openai.OpenAI:
    return openai.OpenAI(base_url=v1.base_url, api_key=v1.key, max_retries=0)


def test_chat_reports_usage_and_stop(v1):
    v1.provider.play([Say("Hello from the script.")])
    answer = client(v1).chat.completions.create(model="scripted", messages=[{"role": "user", "content": "Hi there"}])
    assert answer.choices[0].message.content == "Hello from the script."
    assert answer.choices[0].finish_reason == "stop" and answer.choices[0].logprobs is None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens, answer.usage.total_tokens) == (2, 4, 6)


def test_a_reply_cut_by_max_tokens_says_length_and_the_sdk_sees_it(v1):
    v1.provider.play([Say("Once upon a time there was a dragon.")])
    answer = client(v1).chat.completions.create(
        model="scripted", messages=[{"role": "user", "content": "A story"}], max_tokens=3
    )
    assert answer.choices[0].message.content == "Once upon a" and answer.choices[0].finish_reason == "length"
    with pytest.raises(openai.LengthFinishReasonError):
        client(v1).chat.completions.parse(
            model="scripted", messages=[{"role": "user", "content": "A story"}], max_tokens=3, response_format=Person
        )


def test_streaming_with_usage_ends_with_a_usage_chunk_without_choices(v1):
    v1.provider.play([Say("Streamed words come one by one.")])
    chunks = list(
        client(v1).chat.completions.create(
            model="scripted",
            messages=[{"role": "user", "content": "Stream please"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Streamed words come one by one."
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 6


def test_a_tool_round_trip_streamed_and_not(v1):
    v1.provider.play([Call("get_weather", '{"city": "Lisbon"}'), Say("It is sunny in Lisbon.")])
    sdk = client(v1)
    question = [{"role": "user", "content": "Weather in Lisbon?"}]
    first = sdk.chat.completions.create(model="scripted", messages=question, tools=[WEATHER_TOOL])
    (call,) = first.choices[0].message.tool_calls
    assert first.choices[0].finish_reason == "tool_calls" and first.choices[0].message.content is None
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Lisbon"}
    followed = [*question, first.choices[0].message.model_dump(exclude_none=True)]
    followed.append({"role": "tool", "tool_call_id": call.id, "content": "sunny, 24 °C"})
    final = sdk.chat.completions.create(model="scripted", messages=followed, tools=[WEATHER_TOOL])
    assert final.choices[0].message.content == "It is sunny in Lisbon."
    sent = v1.provider.bodies[-1]
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    assert sent["messages"][-1] == {"role": "tool", "content": "sunny, 24 °C", "tool_call_id": call.id}
    assert sent["messages"][-2]["tool_calls"][0]["id"] == call.id

    v1.provider.play([Call("get_weather", '{"city": "Porto"}')])
    chunks = list(sdk.chat.completions.create(model="scripted", messages=question, tools=[WEATHER_TOOL], stream=True))
    pieces = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert pieces[0].function.name == "get_weather" and pieces[0].id == "call_scripted"
    assert json.loads("".join(p.function.arguments or "" for p in pieces)) == {"city": "Porto"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


class Person(BaseModel):
    name: str
    age: int


def test_structured_output_with_parse_and_a_json_schema(v1):
    v1.provider.play([Say('{"name": "Ada", "age": 36}')])
    parsed = client(v1).chat.completions.parse(
        model="scripted", messages=[{"role": "user", "content": "Who?"}], response_format=Person
    )
    assert parsed.choices[0].message.parsed == Person(name="Ada", age=36)
    sent = v1.provider.bodies[-1]["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["schema"]["required"] == ["name", "age"]


def test_sampling_fields_reach_the_provider_and_n_choices_are_answered(v1):
    v1.provider.play([Say("One."), Say("Two.")])
    answer = client(v1).chat.completions.create(
        model="scripted",
        messages=[{"role": "user", "content": "Count"}],
        n=2,
        top_p=0.5,
        seed=7,
        frequency_penalty=0.1,
        presence_penalty=0.2,
        stop=["END"],
        logprobs=True,
        top_logprobs=2,
    )
    assert [c.message.content for c in answer.choices] == ["One.", "Two."] and [c.index for c in answer.choices] == [
        0,
        1,
    ]
    sent = v1.provider.bodies[-1]
    assert {k: sent[k] for k in ("top_p", "seed", "frequency_penalty", "presence_penalty", "stop", "top_logprobs")} == {
        "top_p": 0.5,
        "seed": 7,
        "frequency_penalty": 0.1,
        "presence_penalty": 0.2,
        "stop": ["END"],
        "top_logprobs": 2,
    }


@pytest.mark.parametrize(
    "extra, names",
    [
        ({"n": 5}, "`n`"),
        ({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Sure,"}]}, "prefill"),
        ({"store": True}, "store"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}]},
            "image 1 must be a base64 data URL",
        ),
    ],
)
def test_what_cannot_be_honoured_is_refused_with_a_400_naming_it(v1, extra, names):
    body = {"model": "scripted", "messages": [{"role": "user", "content": "Hi"}], **extra}
    refused = httpx.post(f"{v1.base_url}/chat/completions", json=body, headers={"Authorization": f"Bearer {v1.key}"})
    assert refused.status_code == 400 and names in refused.json()["error"]["message"]


def test_models_one_model_request_ids_and_head(v1):
    sdk = client(v1)
    built_in = ["assistant:writing-helper", "assistant:python-tutor", "assistant:librarian"]
    assert [m.id for m in sdk.models.list()] == ["scripted", *built_in]
    assert sdk.models.retrieve("scripted").id == "scripted"
    with pytest.raises(openai.NotFoundError):
        sdk.models.retrieve("no-such-model")
    headers = {"Authorization": f"Bearer {v1.key}"}
    answer = httpx.get(f"{v1.base_url}/models", headers=headers)
    assert len(answer.headers["x-request-id"]) == 32 and answer.headers["x-request-id"] in v1.api.log()
    head = httpx.head(f"{v1.base_url}/models", headers={**headers, "x-request-id": "mine-42"})
    assert head.status_code == 200 and head.content == b"" and head.headers["x-request-id"] == "mine-42"


def test_the_async_client_chats_and_streams(v1):
    v1.provider.play([Say("Async hello."), Say("Async stream.")])

    async def talk() -> tuple[str, str]:
        sdk = openai.AsyncOpenAI(base_url=v1.base_url, api_key=v1.key, max_retries=0)
        answer = await sdk.chat.completions.create(model="scripted", messages=[{"role": "user", "content": "Hi"}])
        stream = await sdk.chat.completions.create(
            model="scripted", messages=[{"role": "user", "content": "Hi"}], stream=True
        )
        streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        return answer.choices[0].message.content, streamed

    assert asyncio.run(talk()) == ("Async hello.", "Async stream.")


def test_the_local_model_counts_usage_and_says_length(local_server, tmp_path):
    """The smoke test on the real model: llama-cpp-python gives no usage in a stream, so Parley counts
    it with the model's own tokenizer; a small max_tokens ends the reply with "length"."""
    from tests.openai_conformance import ValidatingProxy
    from tests.test_api import start_api, stop_api

    api = start_api(tmp_path / "local", local_server)
    proxy = ValidatingProxy(api.url).start()
    try:
        sdk = openai.OpenAI(base_url=proxy.base_url, api_key=V1.key, max_retries=0)
        question = [{"role": "user", "content": "Tell me a long story about a dragon."}]
        answer = sdk.chat.completions.create(model="smollm2-135m-instruct", messages=question, max_tokens=5)
        assert answer.choices[0].finish_reason == "length" and answer.usage.completion_tokens == 5
        stream = sdk.chat.completions.create(
            model="smollm2-135m-instruct",
            messages=question,
            max_tokens=5,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        assert chunks[-1].usage.completion_tokens == 5 and chunks[-1].usage.prompt_tokens > 5
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
        assert proxy.failures == [] and proxy.checked > 3
    finally:
        proxy.stop()
        stop_api(api)


def test_schema_is_vendored_from_openais_description():
    from tests.openai_conformance import problems

    assert problems("ErrorResponse", {"error": {"message": "x", "type": "y", "code": None, "param": None}}) == []
    assert problems("CreateChatCompletionResponse", {"id": "x"})  # a conformance check that can fail
