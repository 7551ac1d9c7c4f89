"""Chatbot with memory: a llama-index OpenAIAgent over a ChatMemoryBuffer, saved by name.

The agent, memory and LLM are built in ``controller.agent``; the context budget is in
``controller.context``; saving, loading, renaming and deleting are ``SavedChat``'s. With tools
chosen (``set_tools``; ids from ``controller.tools``), the agent may call them; each call is kept
on the reply (``Message.tool_calls``) and rebuilt into the memory in order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace

from llama_index.agent.openai import OpenAIAgent
from llama_index.llms.openai import OpenAI

from controller.agent import build_agent, build_memory, drain
from controller.chat_session import ChatError
from controller.saved_chat import SavedChat
from controller.tools import ToolBox
from model.message import Message
from model.store_base import Store
from utils.llm import LLMConfig, build_llm


class MemoryChat(SavedChat):
    """The memory page's conversation: an OpenAIAgent over the memory, messages and their name.

    Args:
        config: provider, model, limits, system prompt and JSON mode (``config.json_mode``).
        store: where named conversations are saved.
        toolbox: builds the chosen tools, or None (no tools can be chosen).

    Attributes:
        agent: the OpenAIAgent, or None while the config cannot be used (no key).
        tools: the chosen tool ids (empty: a plain chat).
        on_tool_call: called with each tool call's record as it starts and ends (see
            ``controller.agent.ToolCallWorker``), e.g. to show it while it runs; or None.
    """

    agent: OpenAIAgent | None

    def __init__(self, config: LLMConfig, store: Store, toolbox: ToolBox | None = None) -> None:
        self.toolbox = toolbox
        self.tools: list[str] = []
        self.on_tool_call: Callable[[dict], None] | None = None
        super().__init__(config, store)

    def rebuild(self, history: list[Message] | None = None) -> None:
        """Rebuild the LLM, the memory (from ``history``, default all messages) and the agent."""
        super().rebuild(history)
        self.agent = self._agent(self.llm) if self.llm else None

    def _agent(self, llm: OpenAI) -> OpenAIAgent:
        """The agent for ``llm`` with the chosen tools (the local model gets tools again only after a failed call)."""
        tools = self.toolbox.build(self.tools, llm) if self.toolbox is not None and self.tools else []
        return build_agent(
            llm,
            self.memory,
            self.config.system_prompt,
            tools,
            on_call=self._on_call,
            tools_again_only_after_error=self.config.provider == "local",
        )

    def _on_call(self, record: dict) -> None:
        if self.on_tool_call is not None:
            self.on_tool_call(record)

    def set_tools(self, tool_ids: list[str]) -> None:
        """Offer the tools ``tool_ids`` from the next message on, and remember them with the
        conversation: they are stored on its last user message (``Message.tools``), saved at once."""
        if list(tool_ids) == self.tools:
            return
        self.tools = list(tool_ids)
        self.agent = self._agent(self.llm) if self.llm else None
        last = next((i for i in range(len(self.messages) - 1, -1, -1) if self.messages[i].role.value == "user"), None)
        if last is not None and self.messages[last].tools != tuple(tool_ids):
            self.messages[last] = replace(self.messages[last], tools=tuple(tool_ids))
            self._rewrite = True
            self._autosave()

    def load(self, name: str) -> None:
        """Load ``name`` (``SavedChat.load``) and the tools its last user message was sent with."""
        super().load(name)
        last = next((m for m in reversed(self.messages) if m.role.value == "user"), None)
        self.tools = list(last.tools) if last is not None else []
        self.agent = self._agent(self.llm) if self.llm else None

    def _user_message(self, text: str) -> Message:
        """The user's message, with the tools it is sent with."""
        return replace(Message.user(text), tools=tuple(self.tools))

    def _turn(self, text: str) -> Iterator[str]:
        """Yield the agent's reply to ``text``; the reply (with its tool calls) is appended and saved
        when it ends.

        Raises:
            ChatError: the provider failed (memory and agent are rebuilt from ``messages``).
        """

        def start() -> Iterator[str]:
            if self.agent is None:  # build_llm raises the ProviderConfigError that says what is missing
                self.agent = self._agent(build_llm(self.config))
            return drain(self.agent.stream_chat(text))

        def before_retry() -> None:  # the failed attempt's task never reached the memory
            if self.llm is not None:
                self.agent = self._agent(self.llm)

        def save(message: Message) -> None:
            calls = tuple(getattr(self.agent.agent_worker, "calls", ())) if self.agent is not None else ()
            message = replace(message, tool_calls=calls, json_mode=self.config.json_mode)
            if self.turn_id is not None:  # a queued turn: its reply carries the turn's id
                message = replace(message, turn_id=self.turn_id)
            self.messages[-1] = message
            self._autosave()

        try:
            yield from self._relay(start, on_message=save, before_retry=before_retry)
        except (ChatError, GeneratorExit):
            self.rebuild()
            raise
        # The agent moves the turn into its memory from its stream thread, after the stream has
        # ended: a race with the next message. Fresh memory and agent from ``messages`` avoid it.
        self.memory = build_memory(self.messages, self.llm, self.token_limit)
        self.agent = self._agent(self.llm) if self.llm else None
