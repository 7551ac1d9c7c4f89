"""Applying an assistant to a turn: its instructions, provider, model, temperature, tools and JSON
mode over the settings in use, the same way for the pages, the chat server and the workers.

``apply_assistant`` takes the config the sidebar (or the server's settings) would use and gives the
config and tools of the assistant's turn. A tool or knowledge base that no longer exists is
skipped, and said in ``Applied.notes``; ``kb:*`` (the Librarian's) stands for every knowledge base.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from controller.engines import AgentEngine
from controller.tools import ToolBox
from controller.web_search import WebSearch
from model.assistant import ALL_KNOWLEDGE_BASES, DEFAULT, Assistant
from model.store import BaseConversationStore
from settings import Settings
from utils.image_generation import image_endpoint
from utils.knowledge_bases import KnowledgeBaseStore
from utils.providers import LLMConfig, LocalEndpoint, ModelChoice, resolve_config


@dataclass(frozen=True)
class Applied:
    """An assistant's turn settings.

    Attributes:
        config: the provider and model, with the instructions as system prompt, the temperature and
            JSON mode.
        tools: the tool ids offered (existing ones only).
        notes: sentences for the user about tools skipped.
    """

    config: LLMConfig
    tools: tuple[str, ...]
    notes: tuple[str, ...] = ()


def assistant_config(
    assistant: Assistant, base: LLMConfig, settings: Settings, local: LocalEndpoint | None
) -> LLMConfig:
    """``base`` with ``assistant``'s provider and model (when not ``default``), instructions (the
    system prompt, replacing ``base``'s; none when empty), temperature (when set) and JSON mode.
    ``base``'s max tokens and timeout are kept.

    Args:
        assistant: the assistant.
        base: the config the turn would use without it.
        settings: for the keys and URLs of another provider.
        local: the local model server, for the local provider.
    """
    config = base
    if assistant.provider != DEFAULT or assistant.model != DEFAULT:
        provider = base.provider if assistant.provider == DEFAULT else assistant.provider
        model = None if assistant.model == DEFAULT else assistant.model
        same = provider == base.provider
        choice = ModelChoice(
            provider=provider,
            model=model or (base.model if same else None),
            base_url=base.base_url if same and provider != "local" else None,
            api_key=base.api_key if same else None,
        )
        config = replace(
            resolve_config(settings, choice, local),
            max_tokens=base.max_tokens,
            timeout=base.timeout,
            tools_base_url=base.tools_base_url if same else None,
        )
    return replace(
        config,
        system_prompt=assistant.instructions.strip() or None,
        temperature=base.temperature if assistant.temperature is None else assistant.temperature,
        json_mode=assistant.json_mode,
    )


def assistant_tools(assistant: Assistant, available: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The tools of ``assistant`` that exist (``kb:*`` becoming every knowledge base), and a sentence
    per one that does not.

    Args:
        assistant: the assistant.
        available: the tool ids that can be offered now (``ToolBox.available``).
    """
    usable: list[str] = []
    notes: list[str] = []
    for tool in assistant.tools:
        if tool == ALL_KNOWLEDGE_BASES:
            bases = [t for t in available if t.startswith("kb:")]
            usable += [t for t in bases if t not in usable]
            if not bases:
                notes.append(f"{assistant.name} answers from knowledge bases, and there is none yet: create one.")
        elif tool in available:
            if tool not in usable:
                usable.append(tool)
        else:
            what = f"knowledge base {tool[3:]!r}" if tool.startswith("kb:") else f"tool {tool!r}"
            notes.append(f"{assistant.name}'s {what} no longer exists (or is not available here), so it is skipped.")
    return tuple(usable), tuple(notes)


def apply_assistant(
    assistant: Assistant, base: LLMConfig, settings: Settings, local: LocalEndpoint | None, available: Sequence[str]
) -> Applied:
    """The config and tools of a turn with ``assistant`` (see ``assistant_config``, ``assistant_tools``)."""
    tools, notes = assistant_tools(assistant, available)
    return Applied(assistant_config(assistant, base, settings, local), tools, notes)


@dataclass(frozen=True)
class AgentSetup:
    """Makes the memory page's agent for a turn of the chat server or a worker: the settings' model
    without tools, or an assistant's instructions, model and tools.

    Args:
        settings: the loaded settings.
        store: where the assistants are.
        knowledge_bases: where ``kb:<name>`` tools come from, or None.
        local: the local model server, for an assistant on the local provider; or None.
        tool_config: makes a config able to take tools (the local model's tool server).
    """

    settings: Settings
    store: BaseConversationStore
    knowledge_bases: KnowledgeBaseStore | None
    local: LocalEndpoint | None
    tool_config: Callable[[LLMConfig], LLMConfig]

    def agent(
        self, base: LLMConfig, assistant_id: str | None, web: WebSearch | None = None
    ) -> tuple[AgentEngine, tuple[str, ...]]:
        """The agent engine and the tools to offer for a turn by ``assistant_id`` (None, or an
        assistant deleted since: ``base`` without tools).

        Raises:
            StoreError: the store cannot be read.
            LocalServerError: the local model's tool server did not start.
        """
        assistant = self.store.assistant(assistant_id) if assistant_id else None
        if assistant is None:
            return AgentEngine.from_defaults(base, web=web), ()
        toolbox = ToolBox(self.knowledge_bases, web=web, images=image_endpoint(self.settings))
        applied = apply_assistant(assistant, base, self.settings, self.local, toolbox.available())
        config = self.tool_config(applied.config) if applied.tools else applied.config
        return AgentEngine.from_defaults(config, toolbox, web), applied.tools
