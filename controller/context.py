"""The context budget: how many tokens a request may use, which history fits in it, and how much
of an attached file fits beside the typed text.

The prompt may use ``memory_token_limit`` tokens: the context window minus max tokens (room for
the reply), times ``PROMPT_SHARE`` (slack for tokenizer differences). The system prompt and the
new message are counted first; the memory then keeps the newest messages that fit, and the rest
are left out. Counts are llama-index's tokenizer's (tiktoken's cl100k), not the model's own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from llama_index.core.llms import LLM
from llama_index.core.memory import ChatMemoryBuffer
from llama_index.core.utils import get_tokenizer

from controller.errors import ChatError
from model.attachments import AttachmentReader, AttachmentSink
from model.conversation import complete_history
from model.message import Attachment, Message
from model.store import StoreError
from utils.documents import DocumentError, default_limits, read_text
from utils.images import CleanImage, ImageError, clean_image, image_limit, is_image_name
from utils.llm import DEFAULT_OPENAI_LIKE_CONTEXT_WINDOW, context_window_of
from utils.ocr import OcrFailed, OcrUnavailable, image_text
from utils.providers import LLMConfig

#: Share of (context window - max tokens) the prompt may use. The rest is slack for the gap
#: between llama-index's tokenizer and the model's own, and for the chat template's tokens.
PROMPT_SHARE = 0.75
#: Share of the tokens left next to the typed text that attached files may take; the rest keeps
#: room for the conversation so far.
ATTACHMENT_SHARE = 0.6


@dataclass(frozen=True, slots=True)
class ContextBudget:
    """What went to the model for the last reply.

    Attributes:
        sent_messages: messages sent, counting the new one and the system prompt.
        sent_tokens: their size in tokens, as llama-index's tokenizer counts them.
        left_out: older messages left out to fit the context window.
        token_limit: tokens available for the prompt (context window minus room for the reply).
        web_tokens: tokens of web passages among ``sent_tokens`` (0 without a web search).
        web_pages: web pages those passages come from.
    """

    sent_messages: int
    sent_tokens: int
    left_out: int
    token_limit: int
    web_tokens: int = 0
    web_pages: int = 0


def memory_token_limit(context_window: int, max_tokens: int) -> int:
    """The prompt's token limit: ``(context_window - max_tokens) * PROMPT_SHARE``, at least 256.

    Args:
        context_window: the model's context window, in tokens.
        max_tokens: the most tokens one reply may take.
    """
    return max(256, int((context_window - max_tokens) * PROMPT_SHARE))


def prompt_token_limit(config: LLMConfig, llm: LLM | None) -> int:
    """``memory_token_limit`` for ``config``'s model, in tokens.

    Args:
        config: the provider, model and max tokens in use.
        llm: the built model, whose metadata gives its context window; None when the config cannot
            be used yet (no key), in which case ``config.context_window`` or OpenAILike's default
            (3900 tokens) is assumed.
    """
    window = context_window_of(llm) if llm is not None else config.context_window or DEFAULT_OPENAI_LIKE_CONTEXT_WINDOW
    return memory_token_limit(window, config.max_tokens)


def build_memory(
    messages: Sequence[Message], llm: LLM | None, token_limit: int, images: AttachmentReader | None = None
) -> ChatMemoryBuffer:
    """A ChatMemoryBuffer holding the complete ``messages`` (tool calls rebuilt in order), oldest first.

    Args:
        messages: the stored conversation.
        llm: the model the memory serves, or None when none can be built yet.
        token_limit: most tokens of history sent with a request; older messages are left out.
        images: where the messages' images are read from, for a model that sees images; None sends
            only text.
    """
    history = [chat for m in complete_history(messages) for chat in m.to_chat_messages(images)]
    return ChatMemoryBuffer.from_defaults(chat_history=history, llm=llm, token_limit=token_limit)


def fit_memory(memory: ChatMemoryBuffer, text: str, system_prompt: str | None, limit: int) -> ContextBudget:
    """Make ``memory`` keep only the history that fits next to ``text`` and the system prompt.

    Args:
        memory: the conversation before ``text``; its ``token_limit`` is set here.
        text: the new user message.
        system_prompt: sent first, or None.
        limit: tokens the whole prompt may take (``memory_token_limit``).

    Returns:
        the ContextBudget of the request about to be made.

    Raises:
        ChatError: the system prompt alone, or ``text`` with it, is bigger than ``limit`` (the
            sentence says which and how many tokens); it carries ``refused_text`` so that nothing
            the user typed is lost.
    """
    count = memory.tokenizer_fn
    system = len(count(system_prompt)) if system_prompt else 0
    if system > limit:
        raise ChatError(
            f"The instructions (the system prompt or the assistant's) are about {system:,} tokens, but this model "
            f"takes at most {limit:,} per request. Shorten them, or pick a model with a larger context window. "
            "Your text is below so you can copy it.",
            refused_text=text,
        )
    fixed = len(count(text)) + system
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


def fit_attachment(text: str, budget: int, count: Callable[[str], list[int]]) -> str:
    """The longest start of ``text`` that is at most ``budget`` tokens long.

    Args:
        text: a file's text.
        budget: tokens it may take (at least 0).
        count: the tokenizer (text → tokens), whose length is counted.

    Returns:
        ``text`` itself when it fits, else its start cut at a character (an approximation from the
        characters-per-token ratio, shrunk until it fits), or "" when the budget is 0.
    """
    tokens = len(count(text))
    if tokens <= budget:
        return text
    cut = int(len(text) * budget / max(tokens, 1))
    while cut > 0 and len(count(text[:cut])) > budget:
        cut = int(cut * 0.9)
    return text[:cut]


@dataclass(frozen=True, slots=True)
class ReadFiles:
    """What the files given with a message became.

    Attributes:
        attachments: the message's attachments, in order.
        notices: sentences for the user about files that were left out (no OCR here), or ().
    """

    attachments: tuple[Attachment, ...]
    notices: tuple[str, ...] = ()


def read_attachments(
    text: str,
    files: Sequence[tuple[str, bytes]],
    kept: Sequence[Attachment],
    system_prompt: str | None,
    token_limit: int,
    keep: AttachmentSink | None = None,
    vision: bool = False,
) -> ReadFiles:
    """The attachments of a user message: ``kept`` ones, then ``files`` read and cut to fit.

    Args:
        text: what the user typed.
        files: ``(file name, bytes)`` dropped into the chat box: documents, read as a knowledge base
            reads them, and images (``utils.images.IMAGE_TYPES``).
        kept: attachments already read (kept when a message is edited).
        system_prompt: sent with the message, or None.
        token_limit: tokens the whole prompt may take.
        keep: where images are stored (by SHA-256); None refuses images.
        vision: True when the model sees images (they are sent as images); False reads their text
            with OCR, which is sent in their place.

    Returns:
        ``kept`` followed by one Attachment per file: together the new files' text takes at most
        ``ATTACHMENT_SHARE`` of the tokens left next to ``text``, the system prompt and ``kept``.
        An image whose text cannot be read here (no Tesseract) is left out, and a notice says so.

    Raises:
        ChatError: a file is not supported, cannot be read or is not a usable image; the sentence
            names it and ``refused_text`` holds ``text``.
    """
    if not files:
        return ReadFiles(tuple(kept))
    read: list[tuple[str, str, CleanImage | None]] = []
    notices: list[str] = []
    for name, data in files:
        try:
            if is_image_name(name):
                clean = clean_image(name, data, image_limit(default_limits().max_bytes))
                whole = "" if vision else _ocr(name, clean, notices)
                if whole is not None:
                    read.append((name, whole, clean))
            else:
                read.append((name, read_text(name, data), None))
        except (DocumentError, ImageError, OcrFailed) as exc:
            raise ChatError(
                f"The file could not be used: {exc} Your message was not sent; it is below.", refused_text=text
            ) from exc
    count = get_tokenizer()
    fixed = len(count(text)) + len(count(system_prompt or "")) + sum(len(count(a.text)) for a in kept)
    share = max(0, int((token_limit - fixed) * ATTACHMENT_SHARE)) // max(1, len(read))
    found = list(kept)
    for name, whole, image in read:
        used = fit_attachment(whole, share, count)
        attachment = Attachment(name=name, text=used, used_chars=len(used), total_chars=len(whole))
        if image is not None:
            if keep is None:
                raise ChatError(
                    "Images cannot be kept here. Your message was not sent; it is below.", refused_text=text
                )
            try:
                digest = keep.put_attachment(image.data, image.mime)
            except StoreError as exc:
                raise ChatError(f"{name} could not be stored: {exc} Your message is below.", refused_text=text) from exc
            attachment = replace(attachment, sha256=digest, mime=image.mime, ocr=not vision)
        found.append(attachment)
    return ReadFiles(tuple(found), tuple(notices))


def _ocr(name: str, image: CleanImage, notices: list[str]) -> str | None:
    """The text of image ``name`` for a model that cannot see images, or None (and a notice) when
    Tesseract is missing.

    Raises:
        OcrFailed: Tesseract failed or took too long.
    """
    try:
        return image_text(image.data, name)
    except OcrUnavailable as exc:
        notices.append(f"{name} was left out: {exc}")
        return None
