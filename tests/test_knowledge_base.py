"""Knowledge bases on real embeddings (all-MiniLM-L6-v2 from its wheel) and the real local model."""

import json

import pytest
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events.embedding import EmbeddingStartEvent

from controller.chat import Chat
from controller.engines import KnowledgeEngine
from model.json_store import JsonFileStore
from tests.conftest import shown
from tests.kb_files import FACTS, all_files, txt
from utils.documents import DocumentError, load_document
from utils.embeddings import build_embed_model
from utils.knowledge_bases import NOTHING_FOUND, KnowledgeBaseError, KnowledgeBases
from utils.local_server import LOCAL_MODEL_ALIAS
from utils.pg_knowledge_bases import PostgresKnowledgeBases
from utils.providers import LLMConfig


@pytest.fixture(scope="module")
def embed_model():
    return build_embed_model()


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, embed_model):
    root = tmp_path_factory.mktemp("kbs")
    kbs = KnowledgeBases(root, lambda: embed_model)
    kb = kbs.create("Facts")
    report = kb.add_files(all_files())
    return root, kb, report


class EmbeddingCounter(BaseEventHandler):
    """Counts texts sent to the embedding model (llama-index instrumentation events)."""

    texts: int = 0

    @classmethod
    def class_name(cls) -> str:
        return "EmbeddingCounter"

    def handle(self, event, **kwargs) -> None:
        if isinstance(event, EmbeddingStartEvent):
            self.texts += 1


@pytest.fixture(params=["folder", "postgresql"])
def kbs(request, tmp_path, embed_model):
    """An empty knowledge-base store of each kind: a folder, and PostgreSQL with pgvector."""
    if request.param == "folder":
        return KnowledgeBases(tmp_path / "kbs", lambda: embed_model)
    return PostgresKnowledgeBases(request.getfixturevalue("pgvector_server").new_database(), lambda: embed_model)


@pytest.fixture
def embedding_calls():
    counter = EmbeddingCounter()
    dispatcher = get_dispatcher()
    dispatcher.add_event_handler(counter)
    yield counter
    dispatcher.event_handlers.remove(counter)


def test_every_type_indexes(indexed):
    _, kb, report = indexed
    assert sorted(report.indexed) == sorted(FACTS) and not report.problems
    assert all(kb.files[name].chunks >= 1 for name in FACTS)


@pytest.mark.parametrize("file_name", list(FACTS))
def test_each_fact_is_retrieved_first_from_the_right_file(indexed, file_name):
    _, kb, _ = indexed
    question, words = FACTS[file_name]
    found = kb.retrieve(question, top_k=3, threshold=0.0)
    assert found[0].node.metadata["file_name"] == file_name
    assert words in found[0].node.get_content()


def test_pdf_and_spreadsheet_chunks_say_where_they_came_from(indexed):
    _, kb, _ = indexed
    pdf = kb.retrieve(FACTS["manual.pdf"][0], 1, 0.0)[0].node.metadata
    assert pdf["page"] == 2
    row = kb.retrieve(FACTS["inventory.xlsx"][0], 1, 0.0)[0].node.metadata
    assert (row["sheet"], row["row"]) == ("Stock", 3)
    assert (
        "item: Glimmer lanterns; warehouse: C; count: 318"
        in kb.retrieve(FACTS["inventory.xlsx"][0], 1, 0.0)[0].node.get_content()
    )


@pytest.mark.parametrize("file_name", list(FACTS))
def test_answer_on_the_local_model_cites_the_right_file(indexed, local_server, tmp_path, file_name):
    _, kb, _ = indexed
    config = LLMConfig(
        provider="local",
        model=LOCAL_MODEL_ALIAS,
        base_url=local_server.base_url,
        max_tokens=24,
        context_window=local_server.context_window,
    )
    chat = Chat(KnowledgeEngine.from_defaults(config, kb), JsonFileStore(tmp_path / "c.json"))
    chat.save_as("kb")
    reply = "".join(chat.send(FACTS[file_name][0]))
    assert reply.strip() and reply != NOTHING_FOUND
    last = chat.messages[-1]
    assert last.sources[0].file_name == file_name and last.model == LOCAL_MODEL_ALIAS
    saved = json.loads((tmp_path / "c.json").read_text(encoding="utf-8"))["kb"]
    assert saved[-1]["knowledge_base"] == "Facts" and saved[-1]["sources"][0]["file_name"] == file_name


def test_off_topic_question_says_nothing_found_without_asking_the_model(indexed, tmp_path, fault):
    _, kb, _ = indexed
    fault.mode = "500"  # if the model were asked, this would fail
    config = LLMConfig(provider="openai_like", model="m", base_url=fault.base_url)
    chat = Chat(KnowledgeEngine.from_defaults(config, kb, threshold=0.5), JsonFileStore(tmp_path / "c.json"))
    assert "".join(chat.send("What is the best recipe for chocolate cake?")) == NOTHING_FOUND
    assert fault.attempts == 0 and chat.messages[-1].content == NOTHING_FOUND


def test_restart_loads_from_disk_and_embeds_nothing_again(indexed, embed_model, embedding_calls):
    root, kb, _ = indexed
    again = KnowledgeBases(root, lambda: embed_model)
    assert again.names() == ["Facts"]
    reopened = again.open("Facts")
    assert reopened.chunk_count == kb.chunk_count
    report = reopened.add_files(all_files())  # the same bytes: nothing to embed
    assert sorted(report.unchanged) == sorted(FACTS) and report.chunks == 0
    assert embedding_calls.texts == 0
    assert reopened.retrieve(FACTS["crew.csv"][0], 1, 0.0)[0].node.metadata["file_name"] == "crew.csv"
    assert embedding_calls.texts == 1  # only the question


def test_corrupt_pdf_and_empty_file_get_messages_and_the_rest_still_index(tmp_path, embed_model):
    kb = KnowledgeBases(tmp_path, lambda: embed_model).create("Mixed")
    report = kb.add_files(
        [
            ("broken.pdf", b"%PDF-1.4 this is not really a pdf"),
            ("empty.txt", b""),
            ("image.png", b"\x89PNG..."),
            ("valves.txt", dict(all_files())["valves.txt"]),
        ]
    )
    assert report.indexed == ["valves.txt"]
    assert len(report.problems) == 3
    assert any("broken.pdf" in p and "could not be read" in p for p in report.problems)
    assert any("empty.txt" in p and "empty" in p for p in report.problems)
    assert any("image.png" in p and "not supported" in p for p in report.problems)


def test_changed_file_replaces_its_chunks_and_remove_deletes_them(kbs):
    kb = kbs.create("Change")
    kb.add_files([("note.txt", b"The Plimsoll gauge reads 7 bar.")])
    kb.add_files([("note.txt", b"The Plimsoll gauge reads 9 bar.")])
    found = kb.retrieve("What does the Plimsoll gauge read?", 5, 0.0)
    assert [n.node.get_content() for n in found] == ["The Plimsoll gauge reads 9 bar."]
    kb.remove_file("note.txt")
    assert kb.retrieve("What does the Plimsoll gauge read?", 5, 0.0) == [] and kb.files == {}


#: Error codes that differ only in the order of their digits, where embeddings blur and words do not.
CODES = {
    "4417": "the water filter is clogged",
    "4471": "the door is not closed",
    "1744": "the drum motor overheated",
    "7144": "the drain pump is blocked",
    "4174": "the heater has failed",
    "1447": "the water inlet valve is shut",
    "7414": "the detergent drawer is empty",
    "4741": "the load is unbalanced",
    "1474": "the door lock is jammed",
    "7441": "the power supply is unstable",
}


@pytest.fixture(scope="module", params=["folder", "postgresql"])
def error_codes(request, tmp_path_factory, embed_model):
    if request.param == "folder":
        kb = KnowledgeBases(tmp_path_factory.mktemp("codes"), lambda: embed_model).create("Codes")
    else:
        url = request.getfixturevalue("pgvector_server").new_database()
        kb = PostgresKnowledgeBases(url, lambda: embed_model).create("Codes")
    kb.add_files([(f"{c}.txt", f"Error code {c} on the washing machine means {m}.".encode()) for c, m in CODES.items()])
    return kb


def test_hybrid_finds_by_words_what_vectors_alone_miss(error_codes):
    """Asked for each code's meaning, the right note comes first more often in hybrid than by
    vectors alone (all-MiniLM-L6-v2 mixes codes with the same digits up)."""

    def firsts(mode: str) -> int:
        hits = 0
        for code in CODES:
            found = error_codes.retrieve(f"What does error code {code} mean?", 1, 0.3, mode)
            hits += bool(found) and found[0].node.metadata["file_name"] == f"{code}.txt"
        return hits

    vector, keyword, hybrid = firsts("vector"), firsts("keyword"), firsts("hybrid")
    assert vector < len(CODES), "the fixture no longer shows vectors missing"
    assert hybrid > vector and hybrid >= 0.9 * len(CODES) and keyword == len(CODES), (vector, keyword, hybrid)


def test_each_mode_keeps_top_k_and_the_threshold(error_codes):
    question = "What does error code 4417 mean?"
    for mode in ("vector", "keyword", "hybrid"):
        found = error_codes.retrieve(question, 2, 0.0, mode)
        assert len(found) == 2 and all(0 < n.score <= 1 for n in found), mode  # scored by similarity
        first = error_codes.retrieve(question, 3, 0.3, mode)[0]
        assert first.node.metadata["file_name"] == "4417.txt", mode
        # the threshold holds in every mode: no passage is that similar
        assert error_codes.retrieve(question, 3, 0.99, mode) == [], mode
    # a question sharing no word and little meaning with the notes finds nothing
    assert error_codes.retrieve("Is it going to rain tomorrow?", 3, 0.3, "keyword") == []
    assert error_codes.retrieve("Is it going to rain tomorrow?", 3, 0.3, "hybrid") == []
    with pytest.raises(ValueError, match="Unknown retrieval mode 'fuzzy'"):
        error_codes.retrieve(question, 3, 0.3, "fuzzy")


def test_words_of_an_added_file_are_found_and_a_removed_ones_are_not(kbs):
    kb = kbs.create("Words")
    kb.add_files([("a.txt", b"The Plimsoll gauge reads 7 bar.")])
    assert kb.retrieve("Plimsoll gauge", 3, 0.0, "keyword")  # builds the keyword index
    kb.add_files([("b.txt", b"The Tarrant pump runs at night.")])
    found = kb.retrieve("Tarrant pump", 3, 0.0, "keyword")
    assert [n.node.get_content() for n in found] == ["The Tarrant pump runs at night."]
    kb.remove_file("b.txt")
    assert kb.retrieve("Tarrant pump", 3, 0.0, "keyword") == []


def test_add_folder_indexes_its_files(tmp_path, embed_model):
    folder = tmp_path / "docs"
    folder.mkdir()
    files = dict(all_files())
    for name in ("valves.txt", "crew.csv"):
        (folder / name).write_bytes(files[name])
    kb = KnowledgeBases(tmp_path / "kbs", lambda: embed_model).create("Folder")
    seen = []
    report = kb.add_folder(folder, progress=lambda done, total, chunks: seen.append((done, total)))
    assert sorted(report.indexed) == ["crew.csv", "valves.txt"] and seen[-1] == (2, 2)
    with pytest.raises(KnowledgeBaseError, match="not a folder"):
        kb.add_folder(tmp_path / "missing")


def test_names_are_checked(kbs):
    with pytest.raises(KnowledgeBaseError, match="enter a name"):
        kbs.create("  ")
    kbs.create("Same")
    with pytest.raises(KnowledgeBaseError, match="already exists"):
        kbs.create("Same")
    kbs.delete("Same")
    assert kbs.names() == []


def test_unsupported_type_is_named():
    with pytest.raises(DocumentError, match="not supported"):
        load_document("x.exe", b"MZ")


KB_PAGE = str(__import__("pathlib").Path(__file__).resolve().parent.parent / "pages" / "3_Knowledge_Base.py")


def test_page_create_upload_ask_sources_delete(app_env, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("KNOWLEDGE_BASE_DIR", str(tmp_path / "kbs"))
    files = dict(all_files())
    at = AppTest.from_file(KB_PAGE, default_timeout=180).run()
    assert not at.exception
    at.text_input(key="kb_new_name").input("Plant docs")
    at.button(key="kb_create").click().run()
    assert at.selectbox(key="kb_select").value == "Plant docs"
    at.file_uploader(key="kb_upload_0").set_value(
        [
            ("valves.txt", files["valves.txt"], "text/plain"),
            (
                "inventory.xlsx",
                files["inventory.xlsx"],
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            ),
        ]
    ).run()
    at.button(key="kb_index").click().run()
    assert any("Indexed 2 file(s)" in s.value for s in at.sidebar.success)
    assert at.radio(key="kb_mode").value == "hybrid"
    at.radio(key="kb_mode").set_value("keyword").run()
    at.chat_input[0].set_value(FACTS["valves.txt"][0]).run()
    assert not at.exception and not at.error
    reply = at.chat_message[1]
    assert reply.markdown[0].value.strip()
    sources = [e for e in reply.expander if e.label == "Sources"]
    assert sources and "valves.txt" in shown(sources[0].markdown[0].value)
    at.button(key="kb_delete").click().run()
    at.button(key="kb_confirm_delete").click().run()
    assert any("Deleted the knowledge base" in s.value for s in at.sidebar.success)
    assert not list((tmp_path / "kbs").glob("*/manifest.json"))


def _blank_pdf() -> bytes:
    from fpdf import FPDF

    doc = FPDF()
    doc.add_page()  # a page with no text on it, as a scanned image would be
    return bytes(doc.output())


@pytest.mark.parametrize(
    "name, data, reason",
    [
        ("notes.txt", b"caf\xe9 au lait", "not UTF-8 text"),
        ("notes.md", b"\xff\xfe# heading", "not UTF-8 text"),
        ("crew.csv", b"pilot,sign\nJos\xe9,X-1\n", "not UTF-8 text"),
        ("manual.pdf", b"%PDF-1.4 this is not really a pdf", "could not be read"),
        ("scan.pdf", None, "no text was found"),
        ("history.docx", b"PK\x03\x04 not a real zip", "could not be read"),
        ("inventory.xlsx", b"this is not a workbook", "could not be read"),
        ("empty.csv", b"  \n", "the file is empty"),
        ("picture.png", b"\x89PNG\r\n", "not supported"),
    ],
)
def test_every_reader_names_the_file_in_its_error(name, data, reason):
    with pytest.raises(DocumentError) as caught:
        load_document(name, _blank_pdf() if data is None else data)
    message = str(caught.value)
    assert message.startswith(f"{name}: ") and reason in message, message
    assert message.count(name) == 1, message


def test_hostile_files_in_an_upload_are_refused_by_name_and_the_others_are_indexed(tmp_path, embed_model, monkeypatch):
    from tests.hostile_files import docx_bomb, pdf_text_flood
    from utils import documents

    monkeypatch.setattr(documents, "default_limits", lambda: documents.ReadLimits(time_limit=2.0))
    kb = KnowledgeBases(tmp_path / "kbs", lambda: embed_model).create("Mixed")
    upload = [
        ("bomb.docx", docx_bomb(unpacked=120 * 2**20)),  # over the 100 MB a zip may unpack to
        ("slow.pdf", pdf_text_flood(operators=600_000)),  # over the (lowered) time limit
        ("valves.txt", txt()),
    ]
    report = kb.add_files(upload)
    assert report.indexed == ["valves.txt"]
    assert [p.split(":")[0] for p in report.problems] == ["bomb.docx", "slow.pdf"]
    assert "unpacks to" in report.problems[0] and "took longer than 2 s" in report.problems[1]
    assert kb.retrieve("When does the Zorblax valve open?", 1, 0.0)[0].node.metadata["file_name"] == "valves.txt"
