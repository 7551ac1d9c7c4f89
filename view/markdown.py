"""Text shown as Markdown without letting it make the browser fetch anything by itself.

A Markdown image (``![alt](https://host/x.png?d=...)``) is fetched by the browser as soon as it is
drawn, with no click: a reply shaped by a prompt injection (in a document, an attachment or a tool's
output) could send the conversation to any host that way, invisibly. So every image in text Parley
did not write becomes a link the user can choose to open (``no_remote_images``), as ChatGPT and
Open WebUI do, and names (of conversations, files, knowledge bases, tools) are shown as plain text
(``plain``), since Streamlit renders Markdown in labels too.
"""

from __future__ import annotations

import re

#: An inline image, ``![alt](url "title")``; the URL may hold balanced parentheses.
_IMAGE = re.compile(
    r"!\[(?P<alt>(?:\\.|[^\[\]\\])*)\]\(\s*(?P<url><[^>]*>|(?:[^()\s]|\([^()\s]*\))*)(?:\s+[\"'(][^)]*)?\s*\)"
)
#: Fenced code blocks and inline code spans, which Markdown shows as they are.
_CODE = re.compile(
    r"(^(?P<fence>`{3,}|~{3,})[^\n]*\n.*?(?:^(?P=fence)[ \t]*$|\Z)|(?P<ticks>`+).+?(?P=ticks))", re.S | re.M
)
#: Characters that mean something in Markdown (and in Streamlit's labels: ``:red[...]``, ``$math$``).
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:&])")


def _links(prose: str) -> str:
    """``prose`` (no code in it) with each image as a link saying it is one, and any other ``![``
    (a reference-style image) made literal."""
    linked = _IMAGE.sub(lambda m: f"[🖼️ {m.group('alt').strip() or 'image'}]({m.group('url')})", prose)
    return linked.replace("![", "\\![")


def no_remote_images(text: str) -> str:
    """``text`` as Markdown in which no image is drawn: each becomes a link (``[🖼️ alt](url)``).

    Code blocks and code spans are left as they are (Markdown draws nothing in them).
    """
    out, last = [], 0
    for code in _CODE.finditer(text):
        out += [_links(text[last : code.start()]), code.group(0)]
        last = code.end()
    out.append(_links(text[last:]))
    return "".join(out)


def plain(text: str) -> str:
    """``text`` escaped so that Markdown (and Streamlit's label syntax) shows it as it is."""
    return _MARKDOWN.sub(r"\\\1", text)
