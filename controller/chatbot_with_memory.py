"""Chatbot with memory: a llama-index OpenAIAgent over a ChatMemoryBuffer, saved by name.

The agent, memory and LLM are built in ``controller.agent``; the context budget is in
``controller.context``; saving, loading, renaming and deleting are ``SavedChat``'s.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from llama_index.agent.openai import OpenAIAgent

from controller.agent import build_agent, build_memory, drain
from controller.chat_session import ChatError
from controller.saved_chat import SavedChat
from model.message import Message
from utils.llm import build_llm


class MemoryChat(SavedChat):
    """The memory page's conversation: an OpenAIAgent over the memory, messages and their name.

    Args:
        config: provider, model, limits and system prompt.
        store: where named conversations are saved.

    Attributes:
        agent: the OpenAIAgent, or None while the config cannot be used (no key).
    """

    agent: OpenAIAgent | None

    def rebuild(self, history: list[Message] | None = None) -> None:
        """Rebuild the LLM, the memory (from ``history``, default all messages) and the agent."""
        super().rebuild(history)
        self.agent = build_agent(self.llm, self.memory, self.config.system_prompt) if self.llm else None

    def _turn(self, text: str) -> Iterator[str]:
        """Yield the agent's reply to ``text``; the reply is appended and saved when it ends.

        Raises:
            ChatError: the provider failed (memory and agent are rebuilt from ``messages``).
        """

        def start() -> Iterator[str]:
            agent = self.agent
            if agent is None:  # build_llm raises the ProviderConfigError that says what is missing
                agent = self.agent = build_agent(build_llm(self.config), self.memory, self.config.system_prompt)
            return drain(agent.stream_chat(text))

        def before_retry() -> None:  # the failed attempt's task never reached the memory
            if self.llm is not None:
                self.agent = build_agent(self.llm, self.memory, self.config.system_prompt)

        def save(message: Message) -> None:
            if self.turn_id is not None:  # a queued turn: its reply carries the turn's id
                self.messages[-1] = replace(message, turn_id=self.turn_id)
            self._autosave()

        try:
            yield from self._relay(start, on_message=save, before_retry=before_retry)
        except (ChatError, GeneratorExit):
            self.rebuild()
            raise
        # The agent moves the turn into its memory from its stream thread, after the stream has
        # ended: a race with the next message. Fresh memory and agent from ``messages`` avoid it.
        self.memory = build_memory(self.messages, self.llm, self.token_limit)
        self.agent = build_agent(self.llm, self.memory, self.config.system_prompt) if self.llm else None
