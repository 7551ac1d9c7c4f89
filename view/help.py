"""The Help page: Parley's README, so that links from the app (e.g. the demo model notice) open
the right section on this machine, without a network."""

from __future__ import annotations

import re

import streamlit as st

from settings import APP_DIR
from view.common import setup_page

#: Markdown image lines (screenshots): left out, as the page cannot serve docs/*.png by path.
_IMAGE = re.compile(r"^!\[[^\]]*\]\([^)]*\)\s*$", re.MULTILINE)


def render() -> None:
    """Draw README.md (without its screenshots); each heading is an anchor (``/Help#<heading>``)."""
    setup_page("Help", "❓")
    try:
        text = (APP_DIR / "README.md").read_text(encoding="utf-8")
    except OSError as exc:
        st.error(f"The README cannot be read ({exc.strerror}).")
        return
    st.markdown(_IMAGE.sub("", text))
