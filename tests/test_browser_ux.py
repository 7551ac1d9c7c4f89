"""Parley as a ChatGPT user meets it, in Chromium (Playwright, Debian's Chromium): narrow and dark
screens, the conversation list and its "⋯" menu, a reply that goes on while the user is elsewhere,
Regenerate that can be stopped, "Continue", settings and provider labels after a reload, and the
Help page's images."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import CHROMIUM, CHROMIUM_ARGS, run_streamlit
from tests.scripted_server import Say, ScriptedServer
from tests.test_browser import TIMEOUT_MS, open_menu, wait_idle
from view.common import widget_key
from view.style import CONVERSATION_PREFIX

pytestmark = pytest.mark.browser

ANSWER = {"role": "assistant", "content": "Blue, like the sky on a clear day.", "model": "m"}


def saved_conversations() -> dict:
    """Conversations from today (the browser's time zone is UTC), yesterday and two weeks ago,
    stamped when called, so that a run crossing midnight still sees "Today"."""
    now = datetime.now(UTC)
    today = max(now - timedelta(minutes=1), now.replace(hour=0, minute=0, second=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    yesterday = (now - timedelta(days=1)).strftime("%Y-%m-%dT12:00:00Z")
    earlier = (now - timedelta(days=14)).strftime("%Y-%m-%dT12:00:00Z")
    return {
        "Weather in Paris today and the rest of the week": [
            {"role": "user", "content": "How is the weather in Paris?", "timestamp": today},
            {"role": "assistant", "content": "Sunny.", "model": "m", "timestamp": today},
        ],
        "Weather in Paris today and the rest of the week (2)": [
            {"role": "user", "content": "And tomorrow?", "timestamp": today},
            {"role": "assistant", "content": "Rain.", "model": "m", "timestamp": today},
        ],
        "Colours": [
            {"role": "user", "content": "Name a colour.", "timestamp": yesterday},
            ANSWER | {"version_index": 1, "versions": [[ANSWER | {"content": "Red."}]], "timestamp": yesterday},
        ],
        "Plant notes": [
            {
                "role": "user",
                "content": "When does the valve open?",
                "knowledge_base": "plant",
                "timestamp": earlier,
            },
            {"role": "assistant", "content": "At 42 kPa.", "knowledge_base": "plant", "timestamp": earlier},
        ],
    }


LOOK_ALIKE = "Weather in Paris today and the rest of the week"


@pytest.fixture
def saved_app(app_env):
    """The app with ``saved_conversations()`` in its conversations file; yields (url, conversations file)."""
    app_env.write_text(json.dumps(saved_conversations()), encoding="utf-8")
    url, process = run_streamlit()
    yield url, app_env
    process.terminate()
    process.wait(10)


def item(page: Page, name: str):
    return page.locator(f".st-key-{widget_key(CONVERSATION_PREFIX, name)} button").first


def open_memory(page: Page, url: str) -> None:
    """Open the memory page of the app at ``url`` and wait until its run is over."""
    page.goto(f"{url}/Chatbot_With_Memory", timeout=TIMEOUT_MS)
    wait_idle(page)


def inside(box: dict, width: int) -> bool:
    return box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width + 0.5


ACTION_NAMES = ("Copy", "Regenerate", "Previous version", "Next version")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_narrow_and_wide_layouts_in_light_and_dark_never_clip_an_action(saved_app, scheme, shots):
    from playwright.sync_api import sync_playwright

    url, _ = saved_app
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        for width in (1400, 800, 390):
            page = browser.new_page(viewport={"width": width, "height": 860}, color_scheme=scheme)
            page.goto(f"{url}/Chatbot_With_Memory?conversation=Colours", timeout=TIMEOUT_MS)
            wait_idle(page)
            reply = page.get_by_test_id("stChatMessage").nth(1)
            expect(reply.get_by_text("2 / 2")).to_be_visible(timeout=TIMEOUT_MS)
            # A narrow screen starts with the sidebar collapsed. The collapse comes from a component
            # that mounts about a second after the chat shows, so wait for it, not for a fixed time.
            expect(page.get_by_test_id("stSidebar")).to_have_attribute(
                "data-collapsed", "true" if width <= 900 else "false", timeout=TIMEOUT_MS
            )
            for name in ACTION_NAMES:  # each action: its whole button on screen, its name for readers
                button = reply.get_by_role("button", name=name, exact=True)
                expect(button).to_have_count(1)
                assert inside(button.bounding_box(), width), (width, name, button.bounding_box())
            labels = reply.locator('[data-testid="stButton"] [data-testid="stMarkdownContainer"]')
            for i in range(labels.count()):  # a label drawn is drawn whole ("R…" never)
                cut = labels.nth(i).evaluate("e => e.offsetWidth > 1 && e.scrollWidth > e.clientWidth + 1")
                assert not cut, (width, labels.nth(i).inner_text())
            count = reply.get_by_text("2 / 2")
            assert count.bounding_box()["height"] < 30  # "2 / 2" on one line
            copy = reply.get_by_role("button", name="Copy")
            regenerate = reply.get_by_role("button", name="Regenerate")
            style = "e => [getComputedStyle(e).backgroundColor, getComputedStyle(e).borderTopColor]"
            assert copy.evaluate(style) == regenerate.evaluate(style)  # Copy looks like its neighbours
            background = copy.evaluate("e => getComputedStyle(e).backgroundColor")
            channels = [int(c) for c in re.findall(r"\d+", background)[:3]]
            assert (sum(channels) / 3 < 128) == (scheme == "dark"), background  # follows the theme
            if width == 390 and scheme == "dark":
                page.screenshot(path=shots / "narrow_dark.png")
            page.close()
        browser.close()


def test_one_click_search_as_you_type_look_alikes_and_the_menu_closes_after_each_action(saved_app, browser_page, shots):
    url, conversations = saved_app
    page = browser_page
    open_memory(page, url)
    sidebar = page.get_by_test_id("stSidebar")
    first, second = item(page, LOOK_ALIKE), item(page, f"{LOOK_ALIKE} (2)")
    assert first.inner_text() != second.inner_text() and second.inner_text().endswith("(2)")
    expect(sidebar.get_by_text("Today", exact=True)).to_be_visible()
    expect(sidebar.get_by_text("Yesterday", exact=True)).to_be_visible()

    second.click()  # one click opens it, highlighted, in its own URL
    expect(page.get_by_test_id("stChatMessage").nth(0)).to_contain_text("And tomorrow?", timeout=TIMEOUT_MS)
    expect(second).to_have_attribute("kind", "secondary")
    expect(first).to_have_attribute("kind", "tertiary")
    assert "conversation=Weather" in page.url
    cut = "b => [...b.querySelectorAll('*')].some(e => e.scrollWidth > e.clientWidth + 1)"
    assert not first.evaluate(cut) and not second.evaluate(cut)  # "(2)" shows: no label cut by its button

    sidebar.get_by_label("Search conversations").press_sequentially("valve", delay=50)  # no Enter
    expect(item(page, "Colours")).to_have_count(0, timeout=TIMEOUT_MS)
    expect(item(page, "Plant notes")).to_be_visible()
    expect(item(page, "Plant notes")).to_contain_text("📚")
    sidebar.get_by_label("Search conversations").fill("")
    sidebar.get_by_label("Search conversations").press("Tab")
    expect(item(page, "Colours")).to_be_visible(timeout=TIMEOUT_MS)

    open_menu(page, "Colours", "Rename")
    page.mouse.move(700, 820)  # no tooltip over the picture
    page.wait_for_timeout(500)
    page.screenshot(path=shots / "conversations.png")
    page.get_by_label("New name").fill("Favourite colours")
    page.get_by_role("button", name="Rename", exact=True).click()
    expect(page.get_by_role("button", name="Rename", exact=True)).to_be_hidden(timeout=TIMEOUT_MS)  # closed
    expect(item(page, "Favourite colours")).to_be_visible(timeout=TIMEOUT_MS)

    open_menu(page, "Favourite colours", "Delete")
    page.get_by_role("button", name="Delete", exact=True).click()
    dialog = page.get_by_role("dialog")
    yes = dialog.get_by_role("button", name="Yes, delete", exact=True)
    expect(yes).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.get_by_role("button", name="Rename", exact=True)).to_be_hidden()  # the menu closed
    box = yes.bounding_box()
    on_top = page.evaluate(
        "([x, y]) => document.elementFromPoint(x, y)?.closest('button')?.innerText",
        [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2],
    )
    assert on_top and "Yes, delete" in on_top  # nothing covers it
    yes.click()
    expect(item(page, "Favourite colours")).to_have_count(0, timeout=TIMEOUT_MS)
    assert "Favourite colours" not in json.loads(conversations.read_text(encoding="utf-8"))

    item(page, "Plant notes").click()  # a knowledge-base chat opens on its own page
    expect(page.get_by_role("heading", name="Knowledge Base", exact=True, level=1)).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.get_by_test_id("stChatMessage").nth(1)).to_contain_text("42 kPa", timeout=TIMEOUT_MS)
    assert "conversation=Plant+notes" in page.url


def test_a_reply_goes_on_and_is_saved_while_the_user_is_on_another_page(app_env, monkeypatch, browser_page):
    monkeypatch.setenv("LLM_MAX_TOKENS", "300")
    monkeypatch.setenv("LLM_TEMPERATURE", "0")
    url, process = run_streamlit()
    try:
        page = browser_page
        page.goto(f"{url}/Chatbot_With_Memory", timeout=TIMEOUT_MS)
        wait_idle(page)
        box = page.get_by_test_id("stChatInputTextArea")
        box.fill("Write a long story about a dragon and a knight.")
        box.press("Enter")
        expect(page.get_by_test_id("stChatMessage").nth(1)).to_contain_text(
            re.compile(r"\w+ \w+ \w+"), timeout=TIMEOUT_MS
        )
        page.get_by_test_id("stSidebarNav").get_by_text("Simple Chat").click()
        expect(page.get_by_role("heading", name="Simple Chat")).to_be_visible(timeout=TIMEOUT_MS)
        deadline = time.monotonic() + 120
        reply = None
        while time.monotonic() < deadline and reply is None:  # written while the user is elsewhere
            (messages,) = json.loads(app_env.read_text(encoding="utf-8")).values()
            reply = messages[1] if len(messages) == 2 else None
            time.sleep(0.5)
        assert reply is not None and not reply.get("stopped") and not reply.get("incomplete")
        assert len(reply["content"].split()) > 20
        page.get_by_test_id("stSidebarNav").get_by_text("Chatbot With Memory").click()
        wait_idle(page)
        shown = page.get_by_test_id("stChatMessage").nth(1)
        expect(shown).to_contain_text(reply["content"][:40], timeout=TIMEOUT_MS)
        expect(shown.get_by_text("Stopped")).to_have_count(0)
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def paced(app_env, monkeypatch):
    """The app on the scripted server, answering 8 words a second, up to LLM_MAX_TOKENS words."""
    server = ScriptedServer([Say(" ".join(f"word{i}" for i in range(200)))], tokens_per_second=8).start()
    monkeypatch.setenv("LLM_PROVIDER", "openai_like")
    monkeypatch.setenv("LLM_BASE_URL", server.base_url)
    monkeypatch.setenv("LLM_MODEL", "scripted")
    monkeypatch.setenv("LLM_MAX_TOKENS", "6")
    url, process = run_streamlit()
    yield url, server
    process.terminate()
    process.wait(10)
    server.stop()


def test_continue_extends_a_cut_reply_and_a_regenerated_reply_can_be_stopped(paced, app_env, browser_page):
    url, server = paced
    page = browser_page
    open_memory(page, url)
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill("Count for me.")
    box.press("Enter")
    reply = page.get_by_test_id("stChatMessage").nth(1)
    expect(reply.get_by_text("reached the token limit")).to_be_visible(timeout=TIMEOUT_MS)
    reply.get_by_role("button", name="Continue").click()
    expect(reply).to_contain_text(re.compile(r"word5\s?word0"), timeout=TIMEOUT_MS)  # the same message, extended
    wait_idle(page)
    expect(page.get_by_test_id("stChatMessage")).to_have_count(2)
    (messages,) = json.loads(app_env.read_text(encoding="utf-8")).values()
    assert re.match(r"word0 word1 word2 word3 word4 word5\s?word0", messages[1]["content"])

    page.get_by_test_id("stSidebar").get_by_text("Model settings").click()
    page.get_by_label("Max tokens per reply").fill("200")
    page.get_by_label("Max tokens per reply").press("Enter")
    wait_idle(page)
    reply.get_by_role("button", name="Regenerate").click()
    stop = page.get_by_role("button", name="Stop", exact=True)
    expect(stop).to_be_visible(timeout=TIMEOUT_MS)  # a regenerated reply can be stopped too
    expect(page.get_by_test_id("stChatMessage").nth(1)).to_contain_text("word2", timeout=TIMEOUT_MS)
    stop.click()
    expect(reply.get_by_text("Stopped: this reply")).to_be_visible(timeout=5_000)
    expect(reply.get_by_text("2 / 2")).to_be_visible(timeout=5_000)
    (messages,) = json.loads(app_env.read_text(encoding="utf-8")).values()
    assert messages[1]["stopped"] is True and messages[1]["version_index"] == 1


def choose(page: Page, label: str, option: str) -> None:
    """Choose ``option`` in the sidebar's selectbox ``label``. A rerun that lands while the list opens
    (the page's own settle-down run) closes it again, so the list is opened until it shows."""
    box = page.get_by_test_id("stSidebar").get_by_role("combobox", name=label, exact=True)
    choice = page.get_by_role("option", name=option, exact=True)
    for _ in range(3):
        wait_idle(page)
        box.click()
        try:
            choice.wait_for(timeout=5_000)
            break
        except Exception:
            page.keyboard.press("Escape")
    choice.click()
    wait_idle(page)


def test_settings_and_the_provider_label_survive_a_reload(app_env, streamlit_app, browser_page):
    page = browser_page
    page.set_viewport_size({"width": 1280, "height": 1600})  # room for the lists to open downwards
    page.goto(f"{streamlit_app}/Simple_Chat", timeout=TIMEOUT_MS)
    wait_idle(page)
    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_text("Model settings").click()
    expect(sidebar.get_by_text("Temperature")).to_be_visible(timeout=TIMEOUT_MS)
    choose(page, "System prompt", "Concise")
    choose(page, "Provider", "Groq")
    expect(sidebar.get_by_text("llama-3.3-70b-versatile").first).to_be_visible(timeout=TIMEOUT_MS)
    expect(sidebar.get_by_text("smollm2-135m-instruct")).to_have_count(0)  # never Groq with the local model

    page.reload()
    wait_idle(page)
    sidebar.get_by_text("Model settings").click()
    expect(sidebar.get_by_role("combobox", name="System prompt", exact=True)).to_have_value("Concise")
    expect(sidebar.get_by_role("combobox", name="Provider", exact=True)).to_have_value("Groq")
    choose(page, "Provider", "Local")
    local = sidebar.get_by_role("combobox", name="Local model", exact=True)
    expect(local).to_have_value("SmolLM2-135M-Instruct (bundled)", timeout=TIMEOUT_MS)  # not "Choose an option"


def test_the_help_page_is_for_users_and_its_images_load(app_env, streamlit_app, browser_page):
    page = browser_page
    page.goto(f"{streamlit_app}/Help", timeout=TIMEOUT_MS)
    wait_idle(page)
    main = page.get_by_test_id("stMain")
    expect(main.get_by_role("heading", name="Privacy: what stays on this machine")).to_be_visible(timeout=TIMEOUT_MS)
    expect(main.get_by_text("make test")).to_have_count(0)
    images = main.locator("img")
    expect(images.nth(4)).to_be_attached(timeout=TIMEOUT_MS)  # drawn after the text, one by one
    assert images.count() >= 5
    page.wait_for_function("[...document.querySelectorAll('main img')].every(i => i.complete)", timeout=TIMEOUT_MS)
    widths = images.evaluate_all("all => all.map(i => i.naturalWidth)")
    assert all(w > 0 for w in widths), widths
