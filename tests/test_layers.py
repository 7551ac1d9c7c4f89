"""The layering rules: model/, controller/, utils/ and api/ never import streamlit; model/ never imports a
provider LLM (llama_index.llms); every st.* call lives in view/; pages stay thin; api/ is a view over
the controllers."""

import ast
from pathlib import Path

import pytest

APP_DIR = Path(__file__).resolve().parent.parent


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("folder", ["model", "controller", "utils", "api", "worker"])
def test_no_streamlit_outside_view(folder):
    for path in (APP_DIR / folder).rglob("*.py"):
        assert not any(m.split(".")[0] == "streamlit" for m in imported_modules(path)), path


def test_model_does_not_import_provider_llms():
    for path in (APP_DIR / "model").glob("*.py"):
        assert not any(m.startswith("llama_index.llms") for m in imported_modules(path)), path


@pytest.mark.parametrize("page", ["Home.py", *[f"pages/{p.name}" for p in sorted((APP_DIR / "pages").glob("*.py"))]])
def test_pages_are_thin_and_call_no_st(page):
    path = APP_DIR / page
    assert len(path.read_text(encoding="utf-8").splitlines()) <= 40
    assert "streamlit" not in " ".join(imported_modules(path))


def test_no_cuda_build_was_pulled_in():
    from importlib.metadata import distributions, version

    assert version("torch").endswith("+cpu") or "cpu" in version("torch")
    assert not [d.metadata["Name"] for d in distributions() if d.metadata["Name"].lower().startswith("nvidia-")]


def test_the_chat_server_is_a_view_over_the_controllers():
    """api/ calls the controllers like the pages do; it never reaches into the pages' views."""
    for path in (APP_DIR / "api").rglob("*.py"):
        modules = imported_modules(path)
        assert not any(m.split(".")[0] in ("view", "pages") for m in modules), path


def test_controllers_do_not_import_the_memory_page_controller():
    """The shared helpers live in controller/agent.py, context.py and saved_chat.py; only the turns that
    are the memory page's (its page, the chat server and the queue's workers) use chatbot_with_memory.py."""
    runs_the_memory_turn = {"chatbot_with_memory.py", "queue.py"}
    for path in (APP_DIR / "controller").glob("*.py"):
        if path.name not in runs_the_memory_turn:
            assert "controller.chatbot_with_memory" not in imported_modules(path), path
