"""How Parley looks beyond Streamlit's own theme: narrow screens, message actions, the conversation
list, and the "Copy" button.

Everything here is Parley's own fixed code (CSS and JavaScript written in this module), never text
from a message, a model or a file: ``copy_button`` hands the message to its script as data (a JSON
string), which is only ever put on the clipboard, never into the page.

- At 900 px wide or less (``NARROW_PX``), the message actions show their icons only; their labels
  stay in the page for screen readers and tests (visually hidden, not removed), and each has a
  tooltip. The sidebar starts collapsed once per browser tab (Streamlit's own "auto" only collapses
  it at 768 px or less).
- Conversation list items are left-aligned, like a list rather than a row of buttons.
- "Copy" is drawn in the page itself (``st.components.v2``, no frame), with Streamlit's theme
  variables (``--st-*``) and the colours of the Streamlit button beside it, so it looks like its
  neighbours in light and dark.
"""

from __future__ import annotations

import streamlit as st

#: Widest screen, in CSS pixels, treated as narrow (a tablet in portrait, a phone).
NARROW_PX = 900
#: Key prefixes of the containers this module styles.
ACTIONS_PREFIX = "actions-"
CONVERSATION_PREFIX = "conv-open-"

_VISUALLY_HIDDEN = (
    "position:absolute!important;width:1px!important;height:1px!important;overflow:hidden!important;"
    "clip:rect(0 0 0 0)!important;white-space:nowrap!important;"
)

_CSS = f"""<style>
@media (max-width: {NARROW_PX}px) {{
  [class*="st-key-{ACTIONS_PREFIX}"] [data-testid="stButton"] [data-testid="stMarkdownContainer"]
    {{ {_VISUALLY_HIDDEN} }}
}}
[class*="st-key-{ACTIONS_PREFIX}"] [class*="st-key-icon-"] [data-testid="stMarkdownContainer"] {{ {_VISUALLY_HIDDEN} }}
[class*="st-key-{CONVERSATION_PREFIX}"] button, [class*="st-key-{CONVERSATION_PREFIX}"] button > div {{
  justify-content: flex-start; text-align: left;
}}
[class*="st-key-{CONVERSATION_PREFIX}"] [data-testid="stTooltipHoverTarget"] {{
  justify-content: flex-start !important;
}}
</style>"""

_NARROW_JS = f"""
export default function(component) {{
  if (window.innerWidth > {NARROW_PX} || sessionStorage.getItem("parley-sidebar-narrow")) return;
  // The sidebar may not be drawn yet: look again for up to 5 s; once found, never again in this tab.
  const attempt = (left) => {{
    const collapse = document.querySelector('[data-testid="stSidebarCollapseButton"] button');
    if (!collapse) {{ if (left > 0) setTimeout(() => attempt(left - 1), 250); return; }}
    sessionStorage.setItem("parley-sidebar-narrow", "1");
    if (collapse.getAttribute("aria-expanded") === "true") collapse.click();
  }};
  attempt(20);
}}
"""

_COPY_JS = """
export default function(component) {
  const { data, parentElement } = component;
  let button = parentElement.querySelector("button");
  if (!button) {
    button = document.createElement("button");
    button.type = "button";
    button.className = "parley-copy";
    button.innerHTML = '<span aria-hidden="true">📋</span><span class="label">Copy</span>';
    parentElement.appendChild(button);
  }
  button.title = "Copy this message as Markdown";
  // Look exactly like the Streamlit buttons beside it (their colours have no theme variable).
  const match = () => {
    const host = parentElement.host || parentElement;
    const row = host.closest('[data-testid="stHorizontalBlock"]') || document;
    const twin = row.querySelector('[data-testid="stBaseButton-secondary"]');
    if (!twin) return false;
    const style = getComputedStyle(twin);
    button.style.backgroundColor = style.backgroundColor;
    button.style.borderColor = style.borderTopColor;
    button.style.color = style.color;
    return true;
  };
  if (!match()) { setTimeout(match, 100); setTimeout(match, 600); }
  button.onclick = async () => {
    const text = data.text;
    try { await navigator.clipboard.writeText(text); }
    catch (error) {
      const area = document.createElement("textarea");
      area.value = text; document.body.appendChild(area); area.select(); document.execCommand("copy"); area.remove();
    }
    const label = button.querySelector(".label");
    label.textContent = "Copied";
    setTimeout(() => { label.textContent = "Copy"; }, 1500);
  };
}
"""

_COPY_CSS = f"""
.parley-copy {{
  font-family: var(--st-font); font-size: var(--st-base-font-size, 1rem); line-height: 1.6;
  color: var(--st-text-color); background: var(--st-background-color);
  border: 1px solid var(--st-border-color); border-radius: var(--st-button-radius, 0.5rem);
  padding: 0.25rem 0.75rem; min-height: 2.5rem; display: inline-flex; gap: 0.5rem; align-items: center;
  cursor: pointer; user-select: none;
}}
.parley-copy:hover {{ border-color: var(--st-primary-color); color: var(--st-primary-color); }}
.parley-copy:focus-visible {{ outline: 2px solid var(--st-primary-color); }}
@media (max-width: {NARROW_PX}px) {{ .parley-copy .label {{ {_VISUALLY_HIDDEN} }} }}
"""

_copy = st.components.v2.component("parley_copy", js=_COPY_JS, css=_COPY_CSS)
_narrow = st.components.v2.component("parley_narrow", js=_NARROW_JS)


def apply_style() -> None:
    """Add Parley's CSS to the page, and collapse the sidebar on a narrow screen (once per tab)."""
    st.html(_CSS)
    _narrow(key="parley-narrow", height=0)


def copy_button(text: str, key: str) -> None:
    """A one-click "Copy" button that puts ``text`` (a message's Markdown) on the clipboard.

    Args:
        text: what is copied; passed as data, never drawn as HTML.
        key: a key unique on the page.
    """
    _copy(data={"text": text}, key=key, width="content")
