"""The context budget: how many tokens a request may use, and which history fits in it.

The prompt may use ``memory_token_limit`` tokens: the context window minus max tokens (room for
the reply), times ``PROMPT_SHARE`` (slack for tokenizer differences). The system prompt and the
new message are counted first; the memory then keeps the newest messages that fit, and the
rest are left out. Construction of memories and agents is in ``controller.agent``.
"""

from __future__ import annotations

from llama_index.core.llms import LLM
from llama_index.core.memory import ChatMemoryBuffer

from controller.chat_session import ChatError, ContextBudget
from model.message import Message
from utils.llm import DEFAULT_OPENAI_LIKE_CONTEXT_WINDOW, LLMConfig, context_window_of

#: Share of (context window - max tokens) the prompt may use. The rest is slack for the gap
#: between llama-index's tokenizer (tiktoken's cl100k) and the model's own, and for the chat
#: template's tokens around each message.
PROMPT_SHARE = 0.75


def memory_token_limit(context_window: int, max_tokens: int) -> int:
    """Return the prompt's token limit: ``(context_window - max_tokens) * PROMPT_SHARE``, at least 256.

    Args:
        context_window: the model's context window, in tokens.
        max_tokens: the most tokens one reply may take.

    Returns:
        the most tokens (system prompt, history and new message together) one request may carry.
    """
    return max(256, int((context_window - max_tokens) * PROMPT_SHARE))


def prompt_token_limit(config: LLMConfig, llm: LLM | None) -> int:
    """Return ``memory_token_limit`` for ``config``'s model, in tokens.

    Args:
        config: the provider, model and max tokens in use.
        llm: the built model, whose metadata gives its context window; None when the config cannot
            be used yet (no key), in which case ``config.context_window`` or OpenAILike's default
            (3900 tokens) is assumed.
    """
    window = context_window_of(llm) if llm is not None else config.context_window or DEFAULT_OPENAI_LIKE_CONTEXT_WINDOW
    return memory_token_limit(window, config.max_tokens)


def fit_memory(memory: ChatMemoryBuffer, text: str, system_prompt: str | None, limit: int) -> ContextBudget:
    """Make ``memory`` keep only the history that fits next to ``text`` and the system prompt.

    Args:
        memory: the conversation before ``text``; its ``token_limit`` is set here.
        text: the new user message.
        system_prompt: sent first, or None.
        limit: tokens the whole prompt may take (``memory_token_limit``).

    Returns:
        the ContextBudget of the request about to be made (counts in llama-index's tokens).

    Raises:
        ChatError: ``text`` alone (with the system prompt) is bigger than ``limit``; it carries
            ``refused_text`` so that nothing the user typed is lost.
    """
    count = memory.tokenizer_fn
    fixed = len(count(text)) + (len(count(system_prompt)) if system_prompt else 0)
    if fixed > limit:
        raise ChatError(
            f"Your message is about {fixed:,} tokens, but this model takes at most {limit:,} per message "
            "(its context window less room for the reply). Shorten it, or pick a model with a larger "
            "context window. Your text is below so you can copy it.",
            refused_text=text,
        )
    memory.token_limit = limit - fixed
    history = memory.get()
    tokens = fixed + sum(len(count(m.content or "")) for m in history)
    return ContextBudget(
        sent_messages=len(history) + 1 + (1 if system_prompt else 0),
        sent_tokens=tokens,
        left_out=len(memory.get_all()) - len(history),
        token_limit=limit,
    )


def before_pending(messages: list[Message], pending: str | None) -> list[Message]:
    """Return the messages before the last user message when that one still waits for a reply.

    Args:
        messages: the conversation, oldest first.
        pending: the text of the user message waiting for a reply, or None when none waits.

    Returns:
        ``messages`` unchanged when ``pending`` is None, else the messages before the last user one.
    """
    if pending is None:
        return messages
    last_user = max(i for i, m in enumerate(messages) if m.role.value == "user")
    return messages[:last_user]
