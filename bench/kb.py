"""Knowledge-base benchmarks: indexing throughput, query latency at 1,000 and 10,000 chunks,
and recall@3 on 100 generated fact questions. Deterministic (fixed seed); nothing is committed."""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from pathlib import Path

from controller.chat import Chat
from controller.engines import KnowledgeEngine
from model.json_store import JsonFileStore
from utils.embeddings import build_embed_model
from utils.knowledge_bases import KnowledgeBases
from utils.local_server import LOCAL_MODEL_ALIAS
from utils.providers import LLMConfig

SYLLABLES = [
    "zor",
    "blax",
    "quin",
    "dle",
    "vor",
    "pex",
    "bril",
    "moor",
    "tam",
    "sin",
    "glim",
    "mer",
    "plim",
    "soll",
    "kest",
    "ra",
    "nol",
    "ve",
    "dru",
    "sk",
]
PROPERTIES = [
    "opening pressure",
    "colour",
    "blade count",
    "founder",
    "call sign",
    "serial number",
    "home port",
    "weight",
]
FILLER = "Routine notes: the team checked the lights, cleaned the floors and logged the room temperature. "


def made_up_name(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(3)).capitalize()


def facts(count: int, seed: int = 7) -> list[tuple[str, str, str]]:
    """``count`` (file name, text, question) triples, one made-up fact per file."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        name, prop = f"{made_up_name(rng)} {made_up_name(rng)}", rng.choice(PROPERTIES)
        value = f"{rng.randint(100, 999)}-{made_up_name(rng)}"
        text = f"{FILLER}The {prop} of the {name} is {value}. {FILLER}"
        out.append((f"fact-{i:05d}.txt", text, f"What is the {prop} of the {name}?"))
    return out


def run(server_base_url: str, context_window: int, runs: int = 5) -> dict:
    """Index 1,000 then 10,000 one-chunk files; time retrieval and answers; measure recall@3."""
    embed = build_embed_model()
    results: dict = {}
    for count in (1000, 10000):
        kbs = KnowledgeBases(Path(tempfile.mkdtemp()), lambda: embed)
        kb = kbs.create(f"bench {count}")
        items = facts(count)
        started = time.perf_counter()
        report = kb.add_files([(name, text.encode()) for name, text, _ in items])
        elapsed = time.perf_counter() - started
        rng = random.Random(count)
        sample = rng.sample(items, 100)
        retrieval = []
        hits = 0
        for name, _, question in sample:
            t = time.perf_counter()
            found = kb.retrieve(question, 3, 0.0)
            retrieval.append((time.perf_counter() - t) * 1000)
            hits += any(n.node.metadata["file_name"] == name for n in found)
        config = LLMConfig(
            provider="local",
            model=LOCAL_MODEL_ALIAS,
            base_url=server_base_url,
            max_tokens=32,
            temperature=0.0,
            context_window=context_window,
        )
        chat = Chat(
            KnowledgeEngine.from_defaults(config, kb, threshold=0.0), JsonFileStore(Path(tempfile.mkdtemp()) / "c.json")
        )
        answers = []
        for _, _, question in sample[:runs]:
            chat.new()
            t = time.perf_counter()
            "".join(chat.send(question))
            answers.append((time.perf_counter() - t) * 1000)
        results[count] = {
            "chunks": report.chunks,
            "index_seconds": elapsed,
            "chunks_per_s": report.chunks / elapsed,
            "retrieval_ms": statistics.median(retrieval),
            "answer_ms": statistics.median(answers),
            "recall_at_3": hits / len(sample),
        }
        print(f"  knowledge base of {count:,} chunks: {results[count]}", flush=True)
    return results
