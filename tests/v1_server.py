"""Fixtures for the /v1 client tests: Parley's chat server (`python -m api`) on a scripted
OpenAI-compatible provider (tests/scripted_server.py: its choices are set by each test, so no test
depends on what a small model chooses), behind ``ValidatingProxy``, so that every /v1 answer any
client gets is checked against OpenAI's schemas. Import the fixtures into a test module."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.openai_conformance import ValidatingProxy
from tests.scripted_server import Say, ScriptedServer
from tests.test_api import KEY, Api, start_api, stop_api

#: A tool as the clients define it: the weather in a city.
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
#: A JSON schema for structured output: a person's name and age.
PERSON_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


@dataclass
class V1:
    """The running server, the proxy clients talk to, and the scripted provider behind them."""

    api: Api
    proxy: ValidatingProxy
    provider: ScriptedServer
    key: str = KEY

    @property
    def base_url(self) -> str:
        """The /v1 root clients use (the validating proxy)."""
        return self.proxy.base_url


@pytest.fixture(scope="module")
def v1_server(tmp_path_factory) -> Iterator[V1]:
    provider = ScriptedServer([Say("Hello from the script.")]).start()
    env = {"LLM_PROVIDER": "openai_like", "LLM_BASE_URL": provider.base_url, "LLM_MODEL": "scripted"}
    api = start_api(tmp_path_factory.mktemp("v1"), None, **env)
    proxy = ValidatingProxy(api.url).start()
    yield V1(api, proxy, provider)
    proxy.stop()
    stop_api(api)
    provider.stop()


@pytest.fixture
def v1(v1_server: V1) -> Iterator[V1]:
    """The server for one test; afterwards, every answer the test got must have followed OpenAI's schemas."""
    v1_server.proxy.failures.clear()
    checked = v1_server.proxy.checked
    yield v1_server
    assert v1_server.proxy.checked > checked, "the test got no /v1 answer to check"
    assert v1_server.proxy.failures == [], v1_server.proxy.failures
