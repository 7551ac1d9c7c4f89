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


#: The app's own folders and top-level modules (bench/ and tests/ are not the app).
APP_FILES = [
    *(
        p
        for folder in ("model", "controller", "utils", "api", "worker", "view", "pages")
        for p in (APP_DIR / folder).rglob("*.py")
    ),
    APP_DIR / "Home.py",
    APP_DIR / "settings.py",
]
#: Longest function allowed, in lines, not counting its docstring.
MAX_FUNCTION_LINES = 60


def function_lengths(path: Path) -> list[tuple[str, int]]:
    """Every function in ``path`` with its length in lines, its docstring left out."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            lines = node.end_lineno - node.lineno + 1
            first = node.body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                lines -= first.end_lineno - first.lineno + 1
            found.append((node.name, lines))
    return found


def test_no_function_in_the_app_is_over_60_lines():
    long = [
        f"{path.relative_to(APP_DIR)}:{name} ({lines} lines)"
        for path in APP_FILES
        for name, lines in function_lengths(path)
        if lines > MAX_FUNCTION_LINES
    ]
    assert not long, long


def test_the_length_rule_counts_without_the_docstring(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(60))
    path = tmp_path / "f.py"
    path.write_text(f'def f():\n    """A\n    long\n    docstring."""\n{body}\n', encoding="utf-8")
    assert function_lengths(path) == [("f", 61)]  # the def line and 60 statements


def test_one_turn_runner_serves_the_pages_the_chat_server_and_the_workers():
    """Only the turn runner (controller/turn.py) asks an engine for a reply; the pages' views, api/ and
    the worker reach the engines through controller.chat, and llama-index's internals stay in one adapter."""
    for path in APP_FILES:
        text = path.read_text(encoding="utf-8")
        relative = str(path.relative_to(APP_DIR))
        if relative not in ("controller/turn.py", "controller/engines.py"):
            assert ".stream(self._history" not in text and "engine.stream(" not in text, relative
        if relative != "controller/llama_adapter.py":
            modules = imported_modules(path)
            assert not any(m.startswith("llama_index.agent") for m in modules), relative
            assert "_get_llm_chat_kwargs" not in text and "put_in_queue" not in text, relative
    for user in ("api/turns.py", "controller/queue.py", "view/chat.py"):
        assert "controller.chat" in imported_modules(APP_DIR / user), user
