"""Reading search results' pages and ranking their passages against a question.

``read_pages`` fetches the pages in parallel through the SSRF guard (``utils.safe_fetch``), at most
``MAX_PAGES``, each within its time and size limits, and keeps their main text: trafilatura's
extraction for HTML, the text itself for plain text, and the PDF reader the knowledge bases use for
PDF. Anything else, or a page refused, failed or empty, comes back ``skipped`` with the reason.

``rank_passages`` splits the texts into chunks (llama-index's SentenceSplitter) and ranks them
against the question with the embedding model the knowledge bases use, through a llama-index
vector index and its retriever. Embedding costs about 0.2 ms per token on 2 CPU cores (measured
in bench/web.py: all of five long pages would take seconds), so only as many chunks are embedded as
the answer can use (``embedded_chunks``): those sharing the most words with the question.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from llama_index.core import VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import TextNode

from utils.documents import DocumentError, ReadLimits, read_text
from utils.safe_fetch import MAX_BYTES, TIMEOUT_SECONDS, Fetched, FetchPolicy, FetchRefused, fetch
from utils.web_search import SearchResult

#: Pages read per question.
MAX_PAGES = 5
#: Media types read as HTML, and as plain text.
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
TEXT_TYPES = frozenset({"text/plain", "text/markdown"})
#: Chunk size and overlap for ranking, in tokens (llama-index's tokenizer): a few sentences each.
CHUNK_TOKENS = 128
CHUNK_OVERLAP = 16
#: Fewest and most chunks embedded per question (the rest are dropped by word overlap first).
MIN_EMBEDDED_CHUNKS = 4
MAX_EMBEDDED_CHUNKS = 32
#: Most characters of one page's text that are chunked (the start of a very long text).
MAX_PAGE_CHARS = 200_000

_WORD = re.compile(r"\w{3,}", re.UNICODE)


@dataclass(frozen=True)
class Page:
    """A search result's page, read or skipped.

    Attributes:
        result: the search result.
        text: its main text ("" when skipped).
        skipped: why it was not used ("" when it was read).
        note: what the reader should know, e.g. "only its first 2 MB were read", or "".
    """

    result: SearchResult
    text: str = ""
    skipped: str = ""
    note: str = ""


@dataclass(frozen=True)
class Passage:
    """A chunk of a page that was ranked.

    Attributes:
        page: the index of its page in the list given to ``rank_passages``.
        text: the chunk.
        score: its cosine similarity to the question, 0 to 1.
    """

    page: int
    text: str
    score: float


def read_pages(
    results: Sequence[SearchResult],
    policy: FetchPolicy,
    max_bytes: int = MAX_BYTES,
    timeout: float = TIMEOUT_SECONDS,
) -> list[Page]:
    """Fetch and read the first ``MAX_PAGES`` results at once, in their order.

    Args:
        results: search results.
        policy: the internal hosts allowed.
        max_bytes: most bytes read of each page.
        timeout: seconds all of it may take; a page not read by then is skipped.

    Returns:
        one Page per result read (the first ``MAX_PAGES``).
    """
    chosen = list(results)[:MAX_PAGES]
    if not chosen:
        return []
    pool = ThreadPoolExecutor(max_workers=len(chosen), thread_name_prefix="web-page")
    futures: list[Future[Page]] = [pool.submit(read_page, r, policy, max_bytes, timeout) for r in chosen]
    wait(futures, timeout=timeout + 0.5)
    pool.shutdown(wait=False, cancel_futures=True)  # a page still being read ends by its own deadline
    return [
        f.result()
        if f.done() and f.exception() is None
        else Page(r, skipped=f"it took longer than {timeout:.0f} s" if not f.done() else "it could not be read")
        for r, f in zip(chosen, futures, strict=True)
    ]


def read_page(result: SearchResult, policy: FetchPolicy, max_bytes: int, timeout: float) -> Page:
    """Fetch one result's page and extract its text (see the module docstring); never raises."""
    started = time.monotonic()
    try:
        fetched = fetch(result.url, policy, max_bytes=max_bytes, timeout=timeout)
    except FetchRefused as exc:
        return Page(result, skipped=str(exc))
    if fetched.status >= 400:
        return Page(result, skipped=f"the site answered HTTP {fetched.status}")
    note = f"only its first {max_bytes / 2**20:g} MB were read" if fetched.truncated else ""
    try:
        text = page_text(fetched, max(1.0, timeout - (time.monotonic() - started)))
    except DocumentError as exc:
        return Page(result, skipped=str(exc))
    if text is None:
        kind = fetched.content_type or "no type given"
        return Page(result, skipped=f"not a web page, plain text or PDF ({kind})")
    if not text.strip():
        return Page(result, skipped="no text was found on it", note=note)
    return Page(result, text=text[:MAX_PAGE_CHARS], note=note)


def page_text(fetched: Fetched, time_limit: float) -> str | None:
    """The main text of a fetched page, or None when its type is not read.

    Raises:
        DocumentError: a PDF could not be read (cut at the size limit, broken, too many pages).
    """
    kind = fetched.content_type
    if kind in HTML_TYPES or (not kind and fetched.body.lstrip()[:15].lower().startswith((b"<!doctype", b"<html"))):
        import trafilatura  # imported when used: lxml and its friends take a moment

        return trafilatura.extract(fetched.body, url=fetched.final_url, include_comments=False) or ""
    if kind in TEXT_TYPES:
        return fetched.body.decode(fetched.charset or "utf-8", errors="replace")
    if kind == "application/pdf":
        if fetched.truncated:
            raise DocumentError(f"a PDF larger than {len(fetched.body) / 2**20:g} MB is not read")
        limits = ReadLimits(max_bytes=len(fetched.body) + 1, max_pdf_pages=200, time_limit=time_limit)
        return read_text("page.pdf", fetched.body, limits)
    return None


def _overlap(question_words: set[str], text: str) -> int:
    """How many of the question's words appear in ``text``."""
    return len(question_words & {w.lower() for w in _WORD.findall(text)})


def embedded_chunks(token_budget: int) -> int:
    """How many chunks to embed for passages that may take ``token_budget`` tokens: enough to fill
    it, within ``MIN_EMBEDDED_CHUNKS`` and ``MAX_EMBEDDED_CHUNKS``."""
    return max(MIN_EMBEDDED_CHUNKS, min(MAX_EMBEDDED_CHUNKS, -(-token_budget // CHUNK_TOKENS)))


def rank_passages(
    question: str, texts: Sequence[str], embed_model: BaseEmbedding, top_k: int, embedded: int = MAX_EMBEDDED_CHUNKS
) -> list[Passage]:
    """The ``top_k`` chunks of ``texts`` most similar to ``question``, best first.

    Args:
        question: what the user asked.
        texts: each page's text (index = ``Passage.page``).
        embed_model: the knowledge bases' embedding model.
        top_k: chunks returned at most.
        embedded: chunks embedded at most: those sharing the most words with the question.

    Returns:
        Passages, best first.
    """
    splitter = SentenceSplitter(chunk_size=CHUNK_TOKENS, chunk_overlap=CHUNK_OVERLAP)
    nodes = [
        TextNode(text=chunk, metadata={"page": page})
        for page, text in enumerate(texts)
        for chunk in splitter.split_text(text)
        if chunk.strip()
    ]
    if not nodes:
        return []
    words = {w.lower() for w in _WORD.findall(question)}
    if len(nodes) > embedded:
        order = sorted(range(len(nodes)), key=lambda i: (-_overlap(words, nodes[i].text), i))
        nodes = [nodes[i] for i in sorted(order[:embedded])]
    for node in nodes:
        node.excluded_embed_metadata_keys = ["page"]
    index = VectorStoreIndex(nodes=nodes, embed_model=embed_model)
    found = index.as_retriever(similarity_top_k=top_k).retrieve(question)
    return [Passage(int(n.node.metadata["page"]), n.node.get_content(), float(n.score or 0.0)) for n in found]
