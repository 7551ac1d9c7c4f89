"""Web search benchmark: one search turn's own overhead, without the model and without the internet.

A SearXNG-format server and a page server on loopback (tests/web_servers.py) stand in for the web:
the search answers with 5 pages of 200 KB of HTML each (navigation, scripts and styles around an
article of ~30 KB of text, one made-up fact in it). Measured: the search, fetching and extracting
the 5 pages (in parallel, through the SSRF guard), and ranking their passages with the local
embedding model, i.e. ``WebSearch.context``, after one warm-up (the embedding worker loaded).
"""

from __future__ import annotations

import statistics
import time

from controller.web_search import WebSearch, fit_passages
from tests.web_servers import FILLER, PageServer, Route, SearxngServer
from utils.embeddings import build_embed_model
from utils.safe_fetch import FetchPolicy
from utils.web_pages import embedded_chunks, rank_passages, read_pages
from utils.web_search import SearxngSearch

#: Size of each page, in bytes.
PAGE_BYTES = 200 * 1024
#: Pages the search answers with.
PAGES = 5
#: Timed runs (after one warm-up).
RUNS = 7
#: Tokens the passages may take (what the local model's 40% share comes to).
TOKEN_BUDGET = 1100
QUESTION = "How long is the Vintrel river?"


def big_page(number: int) -> bytes:
    """A 200 KB HTML page whose article holds one fact (page 0: the Vintrel's length)."""
    fact = (
        "The Vintrel river is exactly 412 kilometres long and flows into the Amber Sea."
        if number == 0
        else f"The town clock number {number} was repaired in the spring."
    )
    article = "".join(f"<p>{FILLER} Section {i}.</p>" for i in range(60))
    article = article.replace("<p>", f"<p>{fact} ", 1) if number else article.replace("Section 30.", fact)
    head = f"<!doctype html><html><head><title>Page {number}</title><style>"
    tail = f"</style></head><body><nav>{'<a href=/x>Link</a> ' * 200}</nav><article><h1>Page {number}</h1>"
    end = "</article><footer>Footer text.</footer></body></html>"
    padding = PAGE_BYTES - len(head) - len(tail) - len(article) - len(end) - len("<script></script>")
    style = ".c{color:#123456}" * (padding // 2 // 17)
    script = "var x=1;" * ((padding - len(style)) // 8)
    page = f"{head}{style}{tail}{article}<script>{script}</script>{end}".encode()
    return page + b" " * (PAGE_BYTES - len(page))


def run() -> dict:
    """Time ``WebSearch.context`` over the loopback web; returns milliseconds (median, p95, stages)."""
    pages, searxng = PageServer().start(), SearxngServer().start()
    try:
        for number in range(PAGES):
            pages.routes[f"/page{number}"] = Route(body=big_page(number))
        searxng.results = [{"url": pages.url(f"/page{n}"), "title": f"Page {n}", "content": ""} for n in range(PAGES)]
        policy = FetchPolicy.from_text(f"127.0.0.1:{pages.port}", searxng.base_url)
        embed = build_embed_model()
        search = WebSearch(SearxngSearch(searxng.base_url), policy, embed)
        context = search.context(QUESTION, TOKEN_BUDGET)  # warm-up: the embedding worker loads
        totals, stages = [], {"search": [], "fetch_and_extract": [], "rank_and_fit": []}
        for _ in range(RUNS):
            started = time.perf_counter()
            context = search.context(QUESTION, TOKEN_BUDGET)
            totals.append((time.perf_counter() - started) * 1000)
            t0 = time.perf_counter()
            results = SearxngSearch(searxng.base_url).search(QUESTION, PAGES)
            t1 = time.perf_counter()
            read = read_pages(results, policy)
            t2 = time.perf_counter()
            readable = [p for p in read if p.text]
            texts = [p.text for p in readable]
            passages = rank_passages(QUESTION, texts, embed, 12, embedded_chunks(TOKEN_BUDGET))
            fit_passages(QUESTION, readable, passages, [], TOKEN_BUDGET)
            t3 = time.perf_counter()
            for name, (a, b) in zip(stages, ((t0, t1), (t1, t2), (t2, t3)), strict=True):
                stages[name].append((b - a) * 1000)
        assert context.used and "412 kilometres" in context.used[0].text, "the fact's page was not ranked first"
        return {
            "median_ms": statistics.median(totals),
            "p95_ms": sorted(totals)[max(0, int(len(totals) * 0.95) - 1)],
            "stages_ms": {name: statistics.median(values) for name, values in stages.items()},
            "page_kb": PAGE_BYTES // 1024,
            "pages": PAGES,
            "text_kb": round(sum(len(p.text) for p in readable) / PAGES / 1024, 1),
            "runs": RUNS,
        }
    finally:
        pages.stop()
        searxng.stop()


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=1))
