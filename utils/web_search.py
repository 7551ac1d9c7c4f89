"""Web search providers behind one small interface: ``provider.search(query, count)`` gives
``SearchResult``s (title, URL, snippet) or raises ``WebSearchError`` with a sentence that names the
provider and what failed.

Providers (``WEB_SEARCH_PROVIDER``), each through its own client or documented HTTP API:

- ``searxng``: a self-hosted SearXNG's JSON API (``GET <SEARXNG_URL>/search?q=…&format=json``; the
  instance must list ``json`` under ``search.formats`` in its settings.yml);
- ``duckduckgo``: the ``ddgs`` package, no key;
- ``tavily``: the ``tavily-python`` client (``TAVILY_API_KEY``);
- ``brave``: Brave's Web Search API (``GET https://api.search.brave.com/res/v1/web/search`` with the
  key in ``X-Subscription-Token``; results in ``web.results[].{title,url,description}``);
- ``auto`` (the default): SearXNG if ``SEARXNG_URL`` is set, else Tavily or Brave if its key is set,
  else DuckDuckGo.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

#: Seconds a search request may take.
SEARCH_TIMEOUT = 10.0
#: Largest search answer read, in bytes.
MAX_ANSWER_BYTES = 2 * 1024 * 1024
#: Brave's Web Search endpoint (its API reference).
BRAVE_URL = "https://api.search.brave.com/res/v1/web/search"
#: Provider names as the user sees them.
PROVIDER_NAMES = {"searxng": "SearXNG", "duckduckgo": "DuckDuckGo", "tavily": "Tavily", "brave": "Brave Search"}


class WebSearchError(Exception):
    """The search failed; ``str(error)`` names the provider and what failed, for the user."""


@dataclass(frozen=True)
class SearchResult:
    """One search result.

    Attributes:
        title: the page's title as the provider gives it.
        url: the page's URL.
        snippet: the provider's short extract, or "".
    """

    title: str
    url: str
    snippet: str = ""


class SearchProvider(Protocol):
    """A web search provider."""

    name: str

    def search(self, query: str, count: int) -> list[SearchResult]:
        """The first ``count`` results for ``query``.

        Raises:
            WebSearchError: the provider failed or could not be reached.
        """


def _results(items: Any, url_key: str, snippet_key: str, count: int) -> list[SearchResult]:
    """``SearchResult``s from a provider's list of dicts (items without a text URL are skipped)."""
    found = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and isinstance(item.get(url_key), str) and item[url_key]:
            title, snippet = item.get("title"), item.get(snippet_key)
            title = title.strip() if isinstance(title, str) and title.strip() else item[url_key]
            found.append(SearchResult(title, item[url_key], snippet.strip() if isinstance(snippet, str) else ""))
    return found[:count]


@functools.cache
def _client() -> httpx.Client:
    """The httpx client the providers share (making one costs ~60 ms: its TLS context)."""
    return httpx.Client(timeout=SEARCH_TIMEOUT, trust_env=False)


def _http_json(name: str, url: str, params: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    """GET ``url`` and return its JSON answer (at most ``MAX_ANSWER_BYTES``).

    Raises:
        WebSearchError: unreachable, a timeout, an HTTP error status or an answer that is not JSON.
    """
    try:
        with _client().stream("GET", url, params=params, headers=headers) as response:
            body = b""
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_ANSWER_BYTES:
                    raise WebSearchError(f"{name} answered with more than 2 MB; the search was stopped.")
            if response.status_code >= 400:
                raise WebSearchError(f"{name} answered HTTP {response.status_code} {response.reason_phrase}.")
            return httpx.Response(200, content=body).json()
    except httpx.TimeoutException as exc:
        raise WebSearchError(f"{name} did not answer within {SEARCH_TIMEOUT:.0f} s.") from exc
    except httpx.HTTPError as exc:
        raise WebSearchError(f"{name} at {_origin(url)} could not be reached ({_why(exc)}).") from exc
    except ValueError as exc:
        raise WebSearchError(f"{name} did not answer with JSON.") from exc


def _origin(url: str) -> str:
    parts = httpx.URL(url)
    return f"{parts.scheme}://{parts.host}" + (f":{parts.port}" if parts.port else "")


def _why(exc: Exception) -> str:
    text = str(exc).lower()
    if "refused" in text:
        return "connection refused"
    if "name" in text and ("resolution" in text or "not known" in text or "resolve" in text):
        return "its host name does not resolve: no network?"
    return type(exc).__name__


class SearxngSearch:
    """A SearXNG instance's JSON API.

    Args:
        base_url: the instance, e.g. ``http://127.0.0.1:8888``.
    """

    name = PROVIDER_NAMES["searxng"]

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    def search(self, query: str, count: int) -> list[SearchResult]:
        """The first ``count`` results (``results[].{title,url,content}``).

        Raises:
            WebSearchError: see ``_http_json``.
        """
        data = _http_json(self.name, f"{self.base_url}/search", {"q": query, "format": "json"})
        return _results(data.get("results") if isinstance(data, dict) else None, "url", "content", count)


class BraveSearch:
    """Brave's Web Search API.

    Args:
        api_key: ``BRAVE_API_KEY``.
        url: the endpoint (``BRAVE_URL``).
    """

    name = PROVIDER_NAMES["brave"]

    def __init__(self, api_key: str, url: str = BRAVE_URL) -> None:
        self._key, self.url = api_key, url

    def search(self, query: str, count: int) -> list[SearchResult]:
        """The first ``count`` results (``web.results[].{title,url,description}``).

        Raises:
            WebSearchError: see ``_http_json``.
        """
        headers = {"X-Subscription-Token": self._key, "Accept": "application/json"}
        data = _http_json(self.name, self.url, {"q": query, "count": count}, headers)
        web = data.get("web") if isinstance(data, dict) else None
        return _results(web.get("results") if isinstance(web, dict) else None, "url", "description", count)


class TavilySearch:
    """Tavily's search, through its ``tavily-python`` client.

    Args:
        api_key: ``TAVILY_API_KEY``.
        base_url: the API's address; None for Tavily's own.
    """

    name = PROVIDER_NAMES["tavily"]

    def __init__(self, api_key: str, base_url: str | None = None) -> None:
        self._key, self.base_url = api_key, base_url

    def search(self, query: str, count: int) -> list[SearchResult]:
        """The first ``count`` results (``results[].{title,url,content}``).

        Raises:
            WebSearchError: the client failed (its message is named).
        """
        from tavily import TavilyClient  # imported when used: it pulls in requests

        try:
            client = TavilyClient(api_key=self._key, api_base_url=self.base_url)
            data = client.search(query, max_results=count, timeout=SEARCH_TIMEOUT)
        except Exception as exc:  # the client raises requests' errors and its own, for any failure
            raise WebSearchError(f"{self.name} failed: {_tavily_reason(exc)}.") from exc
        return _results(data.get("results") if isinstance(data, dict) else None, "url", "content", count)


def _tavily_reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "connection" in text.lower() or "max retries" in text.lower():
        return "it could not be reached (no network?)"
    return text[:200]


class DuckDuckGoSearch:
    """DuckDuckGo (and the other engines ``ddgs`` reaches), no key.

    Args:
        proxy: a proxy for ``ddgs`` to go through, or None.
    """

    name = PROVIDER_NAMES["duckduckgo"]

    def __init__(self, proxy: str | None = None) -> None:
        self.proxy = proxy

    def search(self, query: str, count: int) -> list[SearchResult]:
        """The first ``count`` results (``[{title, href, body}]``).

        Raises:
            WebSearchError: ``ddgs`` failed (unreachable, rate-limited, a timeout).
        """
        from ddgs import DDGS  # imported when used: it is slow to import
        from ddgs.exceptions import DDGSException

        try:
            items = DDGS(proxy=self.proxy, timeout=int(SEARCH_TIMEOUT)).text(query, max_results=count)
        except DDGSException as exc:
            raise WebSearchError(f"{self.name} failed: {str(exc)[:200] or 'no results could be fetched'}.") from exc
        except Exception as exc:  # ddgs' HTTP client raises its own errors for a network failure
            raise WebSearchError(f"{self.name} could not be reached ({type(exc).__name__}): no network?") from exc
        return _results(items, "href", "body", count)


def search_provider(
    choice: str,
    searxng_url: str | None = None,
    tavily_api_key: str | None = None,
    brave_api_key: str | None = None,
) -> SearchProvider:
    """The provider ``choice`` names (``auto``: as the module docstring says).

    Raises:
        WebSearchError: the chosen provider lacks its URL or key.
    """
    if choice == "auto":
        choice = (
            "searxng" if searxng_url else "tavily" if tavily_api_key else "brave" if brave_api_key else "duckduckgo"
        )
    if choice == "searxng":
        if not searxng_url:
            raise WebSearchError("WEB_SEARCH_PROVIDER is searxng but SEARXNG_URL is not set.")
        return SearxngSearch(searxng_url)
    if choice == "tavily":
        if not tavily_api_key:
            raise WebSearchError("WEB_SEARCH_PROVIDER is tavily but TAVILY_API_KEY is not set.")
        return TavilySearch(tavily_api_key)
    if choice == "brave":
        if not brave_api_key:
            raise WebSearchError("WEB_SEARCH_PROVIDER is brave but BRAVE_API_KEY is not set.")
        return BraveSearch(brave_api_key)
    return DuckDuckGoSearch()
