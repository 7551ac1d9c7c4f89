"""The chat features' page logic with AppTest on the real local model, one branch per test:
regenerate and versions, edit and cancel, what Simple Chat offers, the demo-model notice and the
local model picker."""

import json
import os
import shutil

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import shown
from tests.test_pages import MEMORY, SIMPLE, chat_texts, run, send
from utils.local_server import find_local_model
from view.common import picked_model_server
from view.messages import message_key


def buttons(at: AppTest) -> list[str]:
    return [b.label for b in at.main.button]


def click(at: AppTest, label: str, index: int = 0) -> AppTest:
    [b for b in at.main.button if b.label == label][index].click().run()
    assert not at.exception, at.exception
    return at


def test_regenerate_then_switch_versions(app_env):
    at = send(run(MEMORY), "Name a colour.")
    first = chat_texts(at)[1][1]
    assert "Regenerate" in buttons(at) and "Previous version" not in buttons(at)
    click(at, "Regenerate")
    assert len(chat_texts(at)) == 2
    assert any(m.value == "2 / 2" for m in at.main.markdown)
    click(at, "Previous version")
    assert chat_texts(at)[1][1] == first
    assert any(m.value == "1 / 2" for m in at.main.markdown)
    (messages,) = json.loads(app_env.read_text(encoding="utf-8")).values()
    assert messages[1]["version_index"] == 0 and len(messages[1]["versions"]) == 1


def test_edit_send_makes_a_branch_and_cancel_changes_nothing(app_env):
    at = send(run(MEMORY), "My name is Ada.")
    chat = at.session_state["memory_chat"]
    click(at, "Edit")
    assert at.main.text_area(key=message_key("memory", 0, chat.messages[0]) + "-edit-text").value == "My name is Ada."
    click(at, "Cancel")
    assert [m.content for m in at.session_state["memory_chat"].messages][0] == "My name is Ada."
    click(at, "Edit")
    at.main.text_area(key=message_key("memory", 0, chat.messages[0]) + "-edit-text").input("My name is Grace.")
    click(at, "Send")
    chat = at.session_state["memory_chat"]
    assert chat.messages[0].content == "My name is Grace." and chat.messages[0].version_index == 1
    assert [m.content for m in chat.memory().get_all()][0] == "My name is Grace."
    assert any(m.value == "2 / 2" for m in at.main.markdown)


def test_simple_chat_offers_regenerate_but_not_edit_or_ratings(app_env):
    at = send(run(SIMPLE), "Hello")
    assert "Regenerate" in buttons(at) and "Edit" not in buttons(at)
    assert not at.main.get("feedback")
    click(at, "Regenerate")
    assert len(at.session_state["simple_chat"].messages[1].versions) == 1
    assert not app_env.exists()


def test_the_bundled_model_gets_an_honest_notice_with_three_ways_out(app_env):
    at = run(MEMORY)
    (notice,) = [i.value for i in at.main.info if "135-million-parameter" in i.value]
    assert notice.count("](Help#") == 3


@pytest.fixture
def models_dir(app_env, tmp_path, monkeypatch):
    """LOCAL_MODELS_DIR with a copy of the bundled GGUF (a hard link when possible) and a truncated one."""
    folder = tmp_path / "models"
    folder.mkdir()
    bundled = find_local_model()
    copy = folder / "my-model.gguf"
    try:
        os.link(bundled, copy)
    except OSError:
        shutil.copyfile(bundled, copy)
    (folder / "broken.gguf").write_bytes(bundled.read_bytes()[: bundled.stat().st_size // 2])
    monkeypatch.setenv("LOCAL_MODELS_DIR", str(folder))
    yield folder
    picked_model_server().stop()  # shared by every AppTest in this process: back to the bundled model


def test_model_picker_lists_chooses_and_answers_and_refuses_a_truncated_file(models_dir):
    at = run(MEMORY)
    picker = at.sidebar.selectbox(key="set_local_model")
    assert [getattr(o, "name", o) for o in picker.options] == [
        "SmolLM2-135M-Instruct (bundled)",
        "broken.gguf",
        "my-model.gguf",
    ]
    assert any("Q4_1" in c.value and "8,192 tokens context" in c.value for c in at.sidebar.caption)
    picker.set_value(models_dir / "my-model.gguf").run()
    assert not at.exception and not at.sidebar.error
    send(at, "Hello!")
    chat = at.session_state["memory_chat"]
    assert chat.messages[-1].model == "my-model" and chat.messages[-1].content.strip()
    assert not [i for i in at.main.info if "135-million" in i.value]  # no demo notice on another model

    at.sidebar.selectbox(key="set_local_model").set_value(models_dir / "broken.gguf").run()
    errors = " ".join(e.value for e in at.sidebar.error)
    assert "broken.gguf is truncated or damaged" in errors and "previous model keeps answering" in errors
    assert at.sidebar.selectbox(key="set_local_model").value == models_dir / "my-model.gguf"
    send(at, "Are you still there?")
    assert at.session_state["memory_chat"].messages[-1].model == "my-model"


def test_a_gguf_cut_inside_its_tensor_data_is_refused_before_a_server_starts(tmp_path):
    from utils.local_models import ModelFileError, read_gguf

    bundled = find_local_model()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(bundled.read_bytes()[: bundled.stat().st_size - 4096])
    not_gguf = tmp_path / "notes.gguf"
    not_gguf.write_bytes(b"hello")
    with pytest.raises(ModelFileError, match="cut.gguf is truncated or damaged"):
        read_gguf(cut)
    with pytest.raises(ModelFileError, match="not a GGUF"):
        read_gguf(not_gguf)
    info = read_gguf(bundled)
    assert (info.quantization, info.context_length, info.size_bytes) == ("Q4_1", 8192, bundled.stat().st_size)


def test_a_loaded_chat_shows_its_rating_comment_and_versions(app_env):
    from view.common import widget_key
    from view.style import CONVERSATION_PREFIX

    answer = {"role": "assistant", "content": "Blue.", "model": "m"}
    answer |= {"feedback": {"rating": -1, "comment": "Too vague."}, "version_index": 1}
    answer["versions"] = [[{"role": "assistant", "content": "Red.", "model": "m"}]]
    app_env.write_text(json.dumps({"Colours": [{"role": "user", "content": "Name a colour."}, answer]}))
    at = run(MEMORY)
    at.button(key=widget_key(CONVERSATION_PREFIX, "Colours")).click().run()
    assert chat_texts(at)[1] == ("assistant", "Blue.")
    assert any(shown(c.value) == "💬 Too vague." for c in at.main.caption)
    assert any(m.value == "2 / 2" for m in at.main.markdown)
    chat = at.session_state["memory_chat"]
    thumbs = message_key("memory", 1, chat.messages[1]) + "-thumbs"
    assert at.session_state[thumbs] == 0  # st.feedback's thumbs down
