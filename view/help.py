"""The Help page: the user guide (docs/user-guide.md), in short sections, with its screenshots.

The guide's images are the repository's own files (``docs/*.png``), drawn with ``st.image`` from
disk; an image line naming anything else (a URL, a path outside docs/) is left out, so the page
never makes the browser fetch anything. Each heading is an anchor (``/Help#<heading>``): the
demo-model notice links to "A better local model" and "Other providers".
"""

from __future__ import annotations

import re
from pathlib import Path

import streamlit as st

from settings import APP_DIR
from view.common import setup_page

GUIDE = APP_DIR / "docs" / "user-guide.md"
#: A Markdown image alone on its line: ``![alt](path)``.
_IMAGE = re.compile(r"^!\[(?P<alt>[^\]]*)\]\((?P<path>[^)\s]+)\)\s*$", re.MULTILINE)


def guide_parts(text: str, root: Path = APP_DIR) -> list[tuple[str, str | Path]]:
    """The guide as ("text", Markdown) and ("image", path under ``root``/docs) parts, in order; an
    image that is not a file in docs/ is dropped (with its alt text kept as a caption line)."""
    parts: list[tuple[str, str | Path]] = []
    last = 0
    docs = (root / "docs").resolve()
    for match in _IMAGE.finditer(text):
        parts.append(("text", text[last : match.start()]))
        path = (root / match.group("path")).resolve()
        if path.parent == docs and path.suffix == ".png" and path.is_file():
            parts += [("image", path), ("caption", match.group("alt"))]
        last = match.end()
    parts.append(("text", text[last:]))
    return [(kind, value) for kind, value in parts if not (kind == "text" and not str(value).strip())]


def render() -> None:
    """Draw the user guide with its screenshots."""
    setup_page("Help", "❓")
    try:
        text = GUIDE.read_text(encoding="utf-8")
    except OSError as exc:
        st.error(f"The user guide cannot be read ({exc.strerror}).")
        return
    for kind, value in guide_parts(text):
        if kind == "image":
            st.image(str(value), width="content")
        elif kind == "caption":
            st.caption(str(value))
        else:
            st.markdown(str(value))
