"""Knowledge bases in PostgreSQL with pgvector, shared by every instance: two Streamlit processes on
one database in headless Chromium, and the chat server's /v1 through the openai SDK."""

from __future__ import annotations

import openai
import psycopg
from playwright.sync_api import expect

from tests.conftest import run_streamlit
from tests.kb_files import FACTS, all_files
from tests.test_api import KEY, start_api, stop_api
from tests.test_browser import TIMEOUT_MS, make_knowledge_base, send


def test_a_knowledge_base_made_in_one_instance_answers_in_another_and_over_v1(
    app_env, pgvector_server, browser_page, local_server, tmp_path, monkeypatch, shots
):
    url = pgvector_server.new_database()
    monkeypatch.setenv("CONVERSATIONS_URL", url)  # knowledge bases follow it: this server offers pgvector
    (tmp_path / "valves.txt").write_bytes(dict(all_files())["valves.txt"])
    first_url, first = run_streamlit()
    second_url, second = run_streamlit()
    api = None
    try:
        page = browser_page
        page.goto(f"{first_url}/Knowledge_Base", timeout=TIMEOUT_MS)
        make_knowledge_base(page, "Shared plant", [tmp_path / "valves.txt"])

        # the second instance, another process on the same database, in a browser context of its own
        other = page.context.browser.new_page(viewport={"width": 1280, "height": 860})
        other.goto(f"{second_url}/Knowledge_Base", timeout=TIMEOUT_MS)
        expect(other.get_by_text("Answering from Shared plant: 1 file(s)")).to_be_visible(timeout=TIMEOUT_MS)
        send(other, FACTS["valves.txt"][0])
        reply = other.get_by_test_id("stChatMessage").nth(1)
        reply.get_by_text("Sources").click()
        expect(reply.get_by_text("valves.txt").first).to_be_visible()
        expect(reply.get_by_text("42 kPa").first).to_be_visible()
        other.screenshot(path=shots / "knowledge_base_shared.png")
        assert not (app_env.parent / "kbs").exists(), "the knowledge base must not be kept in the folder"

        api = start_api(tmp_path / "api", local_server, CONVERSATIONS_URL=url)
        sdk = openai.OpenAI(base_url=f"{api.url}/v1", api_key=KEY, timeout=120)
        assert "kb:Shared plant" in [m.id for m in sdk.models.list()]
        answer = sdk.chat.completions.create(
            model="kb:Shared plant", messages=[{"role": "user", "content": FACTS["valves.txt"][0]}]
        )
        sources = answer.model_extra["parley_sources"]
        assert sources[0]["file_name"] == "valves.txt" and "42 kPa" in sources[0]["text"]
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT name FROM parley_knowledge_bases").fetchall() == [("Shared plant",)]
    finally:
        if api is not None:
            stop_api(api)
        for process in (first, second):
            process.terminate()
            process.wait(15)
