"""Images and voice in a real browser (Debian's Chromium): on the real local model, an image read as
text with its thumbnail kept after a reload, a question spoken into a fake microphone and a reply
read aloud; on a scripted provider (whose tool calls are set here), a Run Python chart and a created
image shown in the reply, and "Read replies aloud"."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.conftest import CHROMIUM, CHROMIUM_ARGS, run_streamlit
from tests.scripted_server import Call, Say, ScriptedServer
from tests.test_browser import TIMEOUT_MS, send, wait_idle
from tests.test_browser_chat import attach, bubble, open_memory_page, saved
from tests.test_browser_tools import choose_tool
from tests.test_media import CHART, INVOICE, ImagesServer, invoice_png
from utils.sandbox import isolation
from utils.speech import piper_wav

pytestmark = pytest.mark.browser


def test_an_image_is_read_as_text_for_the_local_model_and_its_thumbnail_survives_a_reload(
    app_env, streamlit_app, browser_page, shots
):
    page = browser_page
    open_memory_page(page, streamlit_app)
    attach(page, "invoice.png", invoice_png(), "image/png")
    send(page, "What is the invoice number?")
    first = bubble(page, 0)
    expect(first.get_by_test_id("stImage")).to_have_count(1, timeout=TIMEOUT_MS)
    expect(first.get_by_text("read as text: this model cannot see images")).to_be_visible(timeout=TIMEOUT_MS)
    wait_idle(page)
    (messages,) = saved(app_env).values()
    image = messages[0]["attachments"][0]
    assert image["ocr"] is True and INVOICE in image["text"] and len(image["sha256"]) == 64
    assert (app_env.parent / "attachments" / f"{image['sha256']}.png").exists()
    assert "base64" not in json.dumps(messages) and len(app_env.read_text()) < 5_000
    page.reload()
    expect(page.get_by_role("heading", name="Chatbot With Memory")).to_be_visible(timeout=TIMEOUT_MS)
    thumbnail = bubble(page, 0).get_by_test_id("stImage").locator("img")
    expect(thumbnail).to_be_visible(timeout=TIMEOUT_MS)
    assert thumbnail.evaluate("img => img.naturalWidth") > 100  # drawn from the stored bytes
    page.screenshot(path=shots / "image_read_as_text.png")


def test_a_question_spoken_into_the_microphone_is_sent_as_its_transcript_and_answered(app_env, streamlit_app, tmp_path):
    recording = tmp_path / "question.wav"
    recording.write_bytes(piper_wav("What is the capital of France?"))
    microphone = [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={recording}",
    ]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS + microphone)
        context = browser.new_context(viewport={"width": 1280, "height": 860}, permissions=["microphone"])
        page = context.new_page()
        open_memory_page(page, streamlit_app)
        page.get_by_role("button", name="Start recording").click()
        page.wait_for_timeout(3_500)  # the fake microphone plays the file (looped) meanwhile
        page.get_by_role("button", name="Submit recording").click()
        expect(bubble(page, 0)).to_contain_text("capital of France", timeout=TIMEOUT_MS)
        expect(bubble(page, 0).get_by_text("🎤 Spoken")).to_be_visible(timeout=TIMEOUT_MS)
        expect(bubble(page, 1).get_by_role("button", name="Read aloud")).to_be_visible(timeout=TIMEOUT_MS)
        wait_idle(page)
        (messages,) = saved(app_env).values()
        assert "capital of france" in messages[0]["content"].lower()
        assert messages[0]["attachments"][0]["mime"].startswith("audio/")
        assert messages[1]["role"] == "assistant" and messages[1]["content"].strip()

        bubble(page, 1).get_by_role("button", name="Read aloud").click()
        expect(bubble(page, 1).get_by_test_id("stAudio")).to_have_count(1, timeout=TIMEOUT_MS)
        browser.close()


@pytest.fixture
def scripted_app(tmp_path):
    """The app on a scripted provider (its model's choices set by the test), with an images endpoint
    for "Create image"; yields (app URL, provider, conversations file)."""
    provider = ScriptedServer([Say("Nothing yet.")]).start()
    images = ImagesServer().start()
    conversations = tmp_path / "conversations.json"
    env = {
        "LLM_PROVIDER": "openai_like",
        "LLM_BASE_URL": provider.base_url,
        "LLM_MODEL": "scripted",
        "IMAGE_MODEL": "dall-e-3",
        "IMAGE_BASE_URL": images.base_url,
        "CONVERSATIONS_FILE": str(conversations),
        "KNOWLEDGE_BASE_DIR": str(tmp_path / "kbs"),
    }
    url, process = run_streamlit(env)
    yield url, provider, conversations
    process.terminate()
    process.wait(10)
    provider.stop()
    images.stop()


def answer_with_tool(app, page, tool: str, call: Call, question: str, words: str):
    """On the scripted ``app``: choose ``tool`` on a new memory page, ask ``question``, the model
    making ``call`` then saying ``words``; returns the reply's bubble once it shows them."""
    url, provider, _ = app
    provider.play([call, Say(words)])
    open_memory_page(page, url)
    choose_tool(page, tool)
    send(page, question, model="scripted")
    reply = bubble(page, 1)
    expect(reply).to_contain_text(words, timeout=TIMEOUT_MS)
    return reply


@pytest.mark.skipif(isolation() != "full", reason="needs bubblewrap")
def test_a_chart_from_run_python_is_shown_in_the_reply_and_stored(scripted_app, browser_page, shots):
    _, _, conversations = scripted_app
    page = browser_page
    call = Call("run_python", json.dumps({"code": CHART}))
    reply = answer_with_tool(
        scripted_app, page, "Run Python", call, "Make a bar chart of 3, 5 and 2.", "Here is the bar chart."
    )
    chart = reply.get_by_test_id("stImage").locator("img")
    expect(chart).to_be_visible(timeout=TIMEOUT_MS)
    assert chart.evaluate("img => img.naturalWidth") > 200
    wait_idle(page)
    (messages,) = json.loads(conversations.read_text()).values()
    image = messages[1]["tool_calls"][0]["images"][0]
    assert (conversations.parent / "attachments" / f"{image['sha256']}.png").exists()
    page.screenshot(path=shots / "chart.png")


def test_create_image_is_offered_when_configured_and_its_image_is_shown(scripted_app, browser_page):
    call = Call("create_image", json.dumps({"description": "a red square"}))
    reply = answer_with_tool(scripted_app, browser_page, "Create image", call, "Draw a red square.", "Made it.")
    expect(reply.get_by_test_id("stImage")).to_have_count(1, timeout=TIMEOUT_MS)


def test_read_replies_aloud_plays_each_new_reply_when_it_ends(scripted_app, browser_page):
    url, provider, _ = scripted_app
    provider.play([Say("The sky is blue.")])
    page = browser_page
    open_memory_page(page, url)
    page.get_by_test_id("stSidebar").get_by_text("Read replies aloud").click()
    wait_idle(page)
    send(page, "What colour is the sky?", model="scripted")
    expect(bubble(page, 1)).to_contain_text("The sky is blue.", timeout=TIMEOUT_MS)
    expect(bubble(page, 1).get_by_test_id("stAudio")).to_have_count(1, timeout=TIMEOUT_MS)
