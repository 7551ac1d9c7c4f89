"""The tools the memory page's agent may call: knowledge bases, a calculator, a clock, Python and
web search.

A conversation's tools are chosen by id (``TOOL_IDS`` plus ``kb:<knowledge base name>``) and
built here as llama-index tools for ``controller.llama_adapter.build_agent``. A tool that fails raises
``ToolFailure`` with one line for the agent and the user (the agent gets it as the call's result,
``Error: <line>``, and may try again).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from llama_index.core.llms import LLM
from llama_index.core.tools import BaseTool, FunctionTool, QueryEngineTool, ToolMetadata, ToolOutput
from pydantic import BaseModel, Field

from controller import calculator
from controller.web_search import WebSearch
from model.attachments import AttachmentSink
from model.message import Attachment
from model.store import StoreError
from utils.image_generation import ImageEndpoint, ImageGenerationError, generate_image
from utils.images import ImageError, clean_image
from utils.knowledge_bases import NOTHING_FOUND, KnowledgeBaseError, KnowledgeBaseStore, source_of
from utils.sandbox import MAX_IMAGE_BYTES, OUTPUT_CAP_BYTES, SandboxUnavailable, isolation, run_python
from utils.web_search import WebSearchError

#: Tool ids and their labels in the sidebar; knowledge bases are ``kb:<name>``, labelled by name.
TOOL_IDS = {
    "calculator": "Calculator",
    "clock": "Date and time",
    "python": "Run Python",
    "web_search": "Web search",
    "image": "Create image",
}
KB_PREFIX = "kb:"
#: Longest argument (characters) a tool's schema allows. llama-cpp-python's function-calling format
#: writes arguments under a grammar made from the schema with no token limit, so an unbounded
#: string let the small model write until its context was full (a minute); the bound ends it.
MAX_ARGUMENT_CHARS = 300
#: Longest Python script run_python's schema allows, in characters. llama-cpp-python turns
#: maxLength into nested grammar rules; at 2,000 its grammar parser failed and the server died.
MAX_CODE_CHARS = 1000


class ToolFailure(Exception):
    """A tool could not do what it was asked; ``str(error)`` is one line for the agent and the user."""


def tool_label(tool_id: str) -> str:
    """The sidebar label of a tool id: "Calculator", "Knowledge base: notes"…"""
    if tool_id.startswith(KB_PREFIX):
        return f"Knowledge base: {tool_id[len(KB_PREFIX) :]}"
    return TOOL_IDS.get(tool_id, tool_id)


def call_label(function: str, tool_ids: tuple[str, ...] | list[str] = ()) -> str:
    """The sidebar label of the tool a call used, from the function name the model called: e.g.
    ``current_time`` → "Date and time", ``search_notes`` → "Knowledge base: notes" when ``kb:notes``
    is among ``tool_ids`` (the tools the message was sent with); the function name when unknown."""
    for tool_id in (*tool_ids, *TOOL_IDS):
        if tool_name(tool_id) == function:
            return tool_label(tool_id)
    return function


def tool_name(tool_id: str) -> str:
    """The function name the model sees for a tool id (OpenAI's ``^[a-zA-Z0-9_-]{1,64}$``): e.g.
    ``calculator``, ``current_time``, ``run_python``, ``search_<knowledge base name>``."""
    if tool_id.startswith(KB_PREFIX):
        slug = re.sub(r"[^a-z0-9]+", "_", tool_id[len(KB_PREFIX) :].lower()).strip("_") or "documents"
        return f"search_{slug}"[:64]
    names = {
        "calculator": "calculator",
        "clock": "current_time",
        "python": "run_python",
        "web_search": "search_web",
        "image": "create_image",
    }
    return names.get(tool_id, tool_id)


def calculate(expression: str) -> str:
    """The calculator tool: ``controller.calculator.calculate``, its refusals as tool failures.

    Args:
        expression: e.g. ``17/100 * 250`` or ``sqrt(2) * 3``.

    Returns:
        the value as text.

    Raises:
        ToolFailure: the expression is not arithmetic the calculator knows, divides by zero, or asks
            for a number of more than 10,000 digits (refused before it is computed).
    """
    try:
        return calculator.calculate(expression)
    except calculator.CalculatorError as exc:
        raise ToolFailure(str(exc)) from exc


def current_time(timezone: str | None = None) -> str:
    """The current date and time in ``timezone`` (an IANA name such as ``Europe/Berlin``, the user's
    browser's), else in this machine's, as ``Sunday, 22 November 2026, 14:05:09 CET (UTC+01:00)``."""
    try:
        zone = ZoneInfo(timezone) if timezone else None
    except (ZoneInfoNotFoundError, ValueError):
        zone = None
    now = datetime.now(zone).astimezone(zone)
    offset = now.strftime("%z")
    return f"{now:%A, %d %B %Y, %H:%M:%S} {now.tzname()} (UTC{offset[:3]}:{offset[3:]})"


def python_tool_result(code: str) -> ToolOutput:
    """Run ``code`` in the sandbox (``utils.sandbox.run_python``): what it printed, and the images
    it saved in its working folder (charts).

    Returns:
        a ToolOutput whose content is the output (stdout and stderr), with a last line
        "[Output cut at 20,000 bytes.]" when cut, or "(no output)", then a line naming the images
        saved (shown to the user); ``raw_output["images"]`` holds them as ``(name, bytes)``.

    Raises:
        ToolFailure: the code failed, ran out of time or memory, or wrote too much (the line says
            which, followed by its output), or code cannot be isolated on this machine.
    """
    try:
        result = run_python(code)
    except SandboxUnavailable as exc:
        raise ToolFailure(str(exc)) from exc
    output = result.output.rstrip() or "(no output)"
    if result.truncated:
        output += f"\n[Output cut at {OUTPUT_CAP_BYTES:,} bytes.]"
    if result.error:
        raise ToolFailure(f"{result.error}\n{output}")
    if result.files:
        names = ", ".join(name for name, _ in result.files)
        output += f"\n[Images saved and shown to the user: {names}.]"
    return ToolOutput(
        content=output,
        tool_name=tool_name("python"),
        raw_input={"code": code},
        raw_output={"images": list(result.files)},
    )


class OutputTool(BaseTool):
    """A tool of one text argument whose function gives a whole ToolOutput (text for the model, and
    ``raw_output`` for Parley: Run Python's and Create image's images).

    Args:
        metadata: the tool's name, description and argument schema.
        argument: the name of its one argument.
        run: the function, called with the argument's text.
    """

    def __init__(self, metadata: ToolMetadata, argument: str, run: Callable[[str], ToolOutput]) -> None:
        self._metadata, self._argument, self._run = metadata, argument, run

    @property
    def metadata(self) -> ToolMetadata:
        """The tool's name, description and argument schema."""
        return self._metadata

    def __call__(self, *args: Any, **kwargs: Any) -> ToolOutput:
        """As ``call``."""
        return self.call(*args, **kwargs)

    def call(self, *args: Any, **kwargs: Any) -> ToolOutput:
        """Run the function on the argument.

        Raises:
            ToolFailure: the argument is missing, or the function's own failures.
        """
        value = str(kwargs.get(self._argument) or kwargs.get("input") or (args[0] if args else ""))
        if not value.strip():
            raise ToolFailure(f"No {self._argument} was given.")
        return self._run(value)


class ImageArgs(BaseModel):
    """create_image's argument."""

    description: str = Field(description="what the image shows, in detail", max_length=MAX_ARGUMENT_CHARS)


def create_image(endpoint: ImageEndpoint, description: str) -> ToolOutput:
    """The "Create image" tool: one image from ``endpoint`` for ``description``.

    Returns:
        a ToolOutput saying the image was made and shown; ``raw_output["images"]`` holds it as
        ``("image.png", bytes)`` (checked and stored by ``image_keeper``).

    Raises:
        ToolFailure: no description, or the image service failed (the line says how).
    """
    try:
        data = generate_image(endpoint, description)
    except ImageGenerationError as exc:
        raise ToolFailure(str(exc)) from exc
    return ToolOutput(
        content="[The image was created and is shown to the user.]",
        tool_name=tool_name("image"),
        raw_input={"description": description},
        raw_output={"images": [("image.png", data)]},
    )


class CalculatorArgs(BaseModel):
    """The calculator's argument."""

    expression: str = Field(description="an arithmetic expression, e.g. 12*7", max_length=MAX_ARGUMENT_CHARS)


class PythonArgs(BaseModel):
    """run_python's argument."""

    code: str = Field(description="a Python script; print what you want to see", max_length=MAX_CODE_CHARS)


class SearchArgs(BaseModel):
    """search_web's argument."""

    query: str = Field(description="what to search the web for", max_length=MAX_ARGUMENT_CHARS)


def web_search_tool(web: WebSearch, token_budget: int) -> OutputTool:
    """The "Web search" tool over ``web``: search, read and rank as ``WebSearch.context`` does, giving
    the model the numbered passages (to cite as [1], [2]…) within ``token_budget`` tokens, and the
    call the pages (``raw_output["sources"]``)."""
    metadata = ToolMetadata(
        name=tool_name("web_search"),
        description="Search the web and read the top pages; returns numbered passages to cite as [1], [2].",
        fn_schema=SearchArgs,
    )

    def search(query: str) -> ToolOutput:
        try:
            context = web.context(query.strip(), token_budget)
        except WebSearchError as exc:
            raise ToolFailure(str(exc)) from exc
        return ToolOutput(
            content=context.prompt,
            tool_name=metadata.get_name(),
            raw_input={"query": query},
            raw_output={"sources": list(context.sources)},
        )

    return OutputTool(metadata, "query", search)


class QuestionArgs(BaseModel):
    """A knowledge base's argument. Named ``question``: the small local model copies the user's
    question into a field of that name more often than into ``input`` (measured)."""

    question: str = Field(max_length=MAX_ARGUMENT_CHARS)


class KnowledgeBaseTool(QueryEngineTool):
    """llama-index's QueryEngineTool over one knowledge base, asked with ``question``; its output
    carries the chunks the answer came from (``raw_output["sources"]``, as ``source_of`` gives them)."""

    def call(self, *args: Any, **kwargs: Any) -> ToolOutput:
        """Answer ``question`` from the knowledge base.

        Raises:
            ToolFailure: no question was given.
        """
        question = str(kwargs.get("question") or kwargs.get("input") or (args[0] if args else "")).strip()
        if not question:
            raise ToolFailure("No question was given.")
        response = self.query_engine.query(question)
        nodes = getattr(response, "source_nodes", []) or []
        answer = str(response) if nodes else NOTHING_FOUND
        return ToolOutput(
            content=answer,
            tool_name=self.metadata.get_name(),
            raw_input={"question": question},
            raw_output={"sources": [source_of(n) for n in nodes]},
        )


@dataclass
class ToolBox:
    """Builds a conversation's tools.

    Args:
        knowledge_bases: where ``kb:<name>`` tools come from, or None (no knowledge-base tools).
        timezone: the user's IANA time zone for the clock, or None for this machine's.
        top_k: chunks a knowledge base retrieves per question.
        threshold: least cosine similarity (0 to 1) a chunk found by meaning needs.
        retrieval_mode: how a knowledge base finds chunks (``utils.knowledge_bases.RETRIEVAL_MODES``).
        web: the web search behind the "Web search" tool, or None (not offered).
        images: the images endpoint behind "Create image", or None (not offered).
    """

    knowledge_bases: KnowledgeBaseStore | None = None
    timezone: str | None = None
    top_k: int = 3
    threshold: float = 0.3
    retrieval_mode: str = "hybrid"
    web: WebSearch | None = None
    images: ImageEndpoint | None = None

    def available(self) -> list[str]:
        """Tool ids to offer: the built-in ones (Run Python only where code can be isolated,
        ``utils.sandbox.isolation``; Web search when ``web`` is set; Create image when ``images`` is),
        then one per knowledge base."""
        names = self.knowledge_bases.names() if self.knowledge_bases is not None else []
        built_in = [t for t in TOOL_IDS if self._offered(t)]
        return [*built_in, *(KB_PREFIX + name for name in names)]

    def _offered(self, tool_id: str) -> bool:
        if tool_id == "python":
            return isolation() == "full"
        if tool_id == "image":
            return self.images is not None
        return tool_id != "web_search" or self.web is not None

    def build(self, tool_ids: list[str], llm: LLM, web_token_budget: int = 1000) -> list[BaseTool]:
        """The llama-index tools for ``tool_ids`` (unknown ids and deleted knowledge bases are left out).

        Args:
            tool_ids: chosen ids.
            llm: the model a knowledge base answers with.
            web_token_budget: tokens the web search tool's passages may take.
        """
        tools: list[BaseTool] = []
        for tool_id in tool_ids:
            tool = self._build(tool_id, llm, web_token_budget)
            if tool is not None:
                tools.append(tool)
        return tools

    def _build(self, tool_id: str, llm: LLM, web_token_budget: int) -> BaseTool | None:
        name = tool_name(tool_id)
        if tool_id == "web_search" and self.web is not None:
            return web_search_tool(self.web, web_token_budget)
        if tool_id == "calculator":
            return FunctionTool.from_defaults(
                fn=calculate,
                name=name,
                description="Evaluate an arithmetic expression (+ - * / ** and sqrt, log, sin…); returns the number.",
                fn_schema=CalculatorArgs,
            )
        if tool_id == "clock":
            return FunctionTool.from_defaults(
                fn=lambda: current_time(self.timezone),
                name=name,
                description="The current date, time and time zone of the user.",
            )
        if tool_id == "python" and isolation() == "full":
            description = (
                "Run a Python script (standard library and matplotlib, no network, 10 s, 512 MB) and return "
                "what it prints. Charts saved as .png in the working folder are shown to the user."
            )
            return OutputTool(
                ToolMetadata(name=name, description=description, fn_schema=PythonArgs), "code", python_tool_result
            )
        if tool_id == "image" and self.images is not None:
            endpoint = self.images
            description = "Create an image from a detailed description; it is shown to the user."
            return OutputTool(
                ToolMetadata(name=name, description=description, fn_schema=ImageArgs),
                "description",
                lambda text: create_image(endpoint, text),
            )
        if tool_id.startswith(KB_PREFIX) and self.knowledge_bases is not None:
            kb_name = tool_id[len(KB_PREFIX) :]
            try:
                kb = self.knowledge_bases.open(kb_name)
            except KnowledgeBaseError:
                return None
            engine = kb.query_engine(llm, self.top_k, self.threshold, self.retrieval_mode)
            metadata = ToolMetadata(
                name=name,
                description=f"Answer a question from the user's documents in the knowledge base {kb_name!r}.",
                fn_schema=QuestionArgs,
            )
            return KnowledgeBaseTool(engine, metadata)
        return None


def arguments_text(arguments: str) -> str:
    """A tool call's JSON arguments, indented for display; the text as it is when not JSON."""
    try:
        return json.dumps(json.loads(arguments), indent=2, ensure_ascii=False)
    except (ValueError, TypeError):
        return arguments


def image_keeper(keep: AttachmentSink) -> Callable[[list[tuple[str, bytes]]], tuple[Attachment, ...]]:
    """What stores the images a tool call made (``(name, bytes)``, untrusted) in ``keep``: PNG and
    JPEG checked and cleaned by ``utils.images.clean_image``, SVG kept as it is when it is UTF-8 text
    holding an ``<svg`` element (shown only as an image, where a browser runs no script and fetches
    nothing). Those that fail the checks are left out."""

    def kept(files: list[tuple[str, bytes]]) -> tuple[Attachment, ...]:
        found: list[Attachment] = []
        for name, data in files:
            try:
                if name.lower().endswith(".svg"):
                    if len(data) > MAX_IMAGE_BYTES or "<svg" not in data.decode("utf-8")[:4096]:
                        continue
                    blob, mime = data, "image/svg+xml"
                else:
                    image = clean_image(name, data, MAX_IMAGE_BYTES)
                    blob, mime = image.data, image.mime
                digest = keep.put_attachment(blob, mime)
            except (ImageError, UnicodeDecodeError, StoreError):
                continue
            found.append(Attachment(name=name, text="", sha256=digest, mime=mime))
        return tuple(found)

    return kept
