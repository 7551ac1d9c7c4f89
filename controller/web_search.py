"""Answering from the web: search, read the pages, rank their passages and hand the best to the model.

``WebSearch.context(question, token_budget)`` runs one search (``utils.web_search``), reads the top
pages through the SSRF guard (``utils.web_pages.read_pages``), ranks their chunks against the
question with the knowledge bases' embedding model and keeps the best that fit in
``token_budget`` tokens (llama-index's tokenizer). The result, a ``WebContext``, holds the text the
model is sent in place of the user's question (the numbered passages, then the question, asking
for citations as [1], [2]…) and the ``Source``s shown under the reply: the pages used, numbered as
in the text, then the pages skipped with the reason.

Engines use it when a user message has ``web_search`` set; the "Web search" tool uses it when the
agent decides; ``/v1`` uses it for ``web_search_options``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.utils import get_tokenizer

from model.message import Source
from settings import Settings
from utils.safe_fetch import FetchPolicy
from utils.web_pages import Page, Passage, embedded_chunks, rank_passages, read_pages
from utils.web_search import SearchProvider, search_provider

#: Share of the prompt's token limit that web passages may take, by OpenAI's ``search_context_size``.
CONTEXT_SHARES = {"low": 0.25, "medium": 0.4, "high": 0.5}
#: Results asked of the provider (only the first ``utils.web_pages.MAX_PAGES`` are read).
RESULTS_ASKED = 5
#: Passages ranked per question before they are fitted to the budget.
PASSAGES_RANKED = 12
#: Least score a passage needs, as a share of the best passage's: passages far less like the question
#: than the best one are noise the model would repeat (measured on the local model).
RELATIVE_FLOOR = 0.5
#: A citation in a reply: ``[1]``, ``[2]``…
CITATION = re.compile(r"\[(\d{1,2})\]")


@dataclass(frozen=True)
class WebContext:
    """What a search found for a question.

    Attributes:
        prompt: the text the model is sent in place of the question.
        sources: the pages used (numbered 1… in ``prompt``), then those skipped (``skipped`` set).
        tokens: tokens the passages take in ``prompt``.
    """

    prompt: str
    sources: tuple[Source, ...]
    tokens: int

    @property
    def used(self) -> tuple[Source, ...]:
        """The sources the passages come from, in citation order."""
        return tuple(s for s in self.sources if not s.skipped)


class WebSearch:
    """Search, read, rank and fit (see the module docstring).

    Args:
        provider: the search provider, or a function making it (called at each search, so a
            missing key is said then, as a ``WebSearchError``).
        policy: the internal hosts the pages may be fetched from.
        embed_model: the embedding model, or a function making it on first use.
        share: the share of the prompt's token limit the passages may take (``CONTEXT_SHARES``).
    """

    def __init__(
        self,
        provider: SearchProvider | Callable[[], SearchProvider],
        policy: FetchPolicy,
        embed_model: BaseEmbedding | Callable[[], BaseEmbedding],
        share: float = CONTEXT_SHARES["medium"],
    ) -> None:
        self._provider, self.policy, self._embed, self.share = provider, policy, embed_model, share

    def with_share(self, share: float) -> WebSearch:
        """The same search giving its passages ``share`` of the prompt's token limit."""
        return WebSearch(self._provider, self.policy, self._embed, share)

    @classmethod
    def from_settings(cls, settings: Settings, embed_model: BaseEmbedding | Callable[[], BaseEmbedding]) -> WebSearch:
        """The web search ``settings`` configure (WEB_SEARCH_PROVIDER, SEARXNG_URL, the keys,
        PARLEY_FETCH_ALLOW; the SearXNG URL is always allowed).

        Raises:
            ValueError: ``PARLEY_FETCH_ALLOW`` holds an entry that is not a host, network or URL.
        """
        searxng = settings.searxng_url
        tavily, brave = settings.tavily_api_key, settings.brave_api_key

        def provider() -> SearchProvider:
            return search_provider(
                settings.web_search_provider,
                searxng,
                tavily.get_secret_value() if tavily is not None else None,
                brave.get_secret_value() if brave is not None else None,
            )

        policy = FetchPolicy.from_text(settings.parley_fetch_allow, searxng)
        return cls(provider, policy, embed_model)

    def provider(self) -> SearchProvider:
        """The search provider.

        Raises:
            WebSearchError: it lacks its URL or key.
        """
        return self._provider() if callable(self._provider) else self._provider

    def embed_model(self) -> BaseEmbedding:
        """The embedding model passages are ranked with."""
        return self._embed if isinstance(self._embed, BaseEmbedding) else self._embed()

    def context(self, question: str, token_budget: int) -> WebContext:
        """Search the web for ``question`` and fit the best passages in ``token_budget`` tokens.

        Raises:
            WebSearchError: the provider failed; the text names it. (Finding nothing is not a
                failure: the model is told that no page could be read.)
        """
        results = self.provider().search(question, RESULTS_ASKED)
        pages = read_pages(results, self.policy)
        readable = [p for p in pages if p.text]
        texts, model = [p.text for p in readable], self.embed_model()
        passages = rank_passages(question, texts, model, PASSAGES_RANKED, embedded_chunks(token_budget))
        return fit_passages(question, readable, passages, [p for p in pages if p.skipped], token_budget)


def fit_passages(
    question: str, pages: Sequence[Page], passages: Sequence[Passage], skipped: Sequence[Page], token_budget: int
) -> WebContext:
    """The ``WebContext`` of the best ``passages`` (of ``pages``) that fit in ``token_budget`` tokens.

    Args:
        question: what the user asked.
        pages: the pages that were read (``Passage.page`` indexes them).
        passages: ranked passages, best first; those under ``RELATIVE_FLOOR`` of the best one's
            score are left out.
        skipped: pages not used, listed after the used ones.
        token_budget: tokens the passages may take.
    """
    count = get_tokenizer()
    chosen: dict[int, list[Passage]] = {}
    used = 0
    floor = passages[0].score * RELATIVE_FLOOR if passages else 0.0
    for passage in passages:
        if passage.score < floor:
            break
        size = len(count(passage.text)) + 8  # the page's heading line, roughly
        if used + size > token_budget:
            continue
        chosen.setdefault(passage.page, []).append(passage)
        used += size
    sources, blocks = [], []
    for number, (page_index, picked) in enumerate(chosen.items(), start=1):
        page = pages[page_index]
        text = "\n\n".join(p.text for p in picked)
        sources.append(Source(page.result.title, page.note, max(p.score for p in picked), text, url=page.result.url))
        blocks.append(f"[{number}] {page.result.title} ({page.result.url})\n{text}")
    sources += [Source(p.result.title, p.note, url=p.result.url, skipped=p.skipped) for p in skipped]
    return WebContext(answer_prompt(question, blocks), tuple(sources), used)


def answer_prompt(question: str, blocks: Sequence[str]) -> str:
    """The text the model is sent: the numbered web passages, then the question and how to cite."""
    if not blocks:
        return (
            "A web search found no page that could be read for the question below; say so if you "
            f"cannot answer it yourself.\n\nQuestion: {question}"
        )
    found = "\n\n".join(blocks)
    return (
        f"Web search results:\n\n{found}\n\n"
        "Answer the question below using these results. Cite the results you use by their number, "
        f"like [1] or [2].\n\nQuestion: {question}"
    )


def citations(text: str, sources: Sequence[Source]) -> list[tuple[int, int, Source]]:
    """Where ``text`` cites ``sources``: ``(start, end, source)`` for each ``[n]`` naming one of the
    used sources (``end`` is one past the ``]``, as Python slices)."""
    used = [s for s in sources if not s.skipped]
    found = []
    for match in CITATION.finditer(text):
        number = int(match.group(1))
        if 1 <= number <= len(used):
            found.append((match.start(), match.end(), used[number - 1]))
    return found
