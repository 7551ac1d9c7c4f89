"""Knowledge bases on disk: named collections of files, indexed with llama-index, and retrieval.

Chatting with one is ``controller.engines.KnowledgeEngine``'s. Each knowledge base lives in
``KNOWLEDGE_BASE_DIR/<id>/``: ``index/`` is the persisted ``VectorStoreIndex``
(``StorageContext.persist``) and ``manifest.json`` lists its files with their SHA-256, chunk count
and document ids. A file whose bytes did not change is not embedded
again; a changed file replaces its old chunks. At start an index is loaded from disk, not
re-embedded.

Retrieval (``KnowledgeBase.retrieve``) finds chunks by meaning (``vector``: cosine similarity of
all-MiniLM-L6-v2 embeddings), by words (``keyword``: BM25 through llama-index's BM25Retriever on
bm25s, English stop words removed and words stemmed) or both (``hybrid``, the default): the two
rankings fused by reciprocal rank fusion, so a chunk that shares the question's rare words is found
even when its embedding is not the closest.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llama_index.core import StorageContext, VectorStoreIndex, load_index_from_storage
from llama_index.core.base.base_query_engine import BaseQueryEngine
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.embeddings.base import BaseEmbedding, similarity
from llama_index.core.llms import LLM
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import BaseNode, NodeWithScore, QueryBundle
from llama_index.core.vector_stores import SimpleVectorStore
from llama_index.retrievers.bm25 import BM25Retriever

from model.message import Source
from utils.documents import DocumentError, load_document

#: Chunk size and overlap in tokens for SentenceSplitter.
CHUNK_SIZE, CHUNK_OVERLAP = 256, 32
MANIFEST = "manifest.json"
#: Chunks embedded together; progress is reported after each batch.
EMBED_BATCH = 256
#: How chunks are found: ``hybrid`` (the default), ``vector`` (by meaning) or ``keyword`` (by words).
RETRIEVAL_MODES = ("hybrid", "vector", "keyword")
#: Reciprocal rank fusion's constant: a chunk at rank r (from 1) of a ranking adds 1 / (RRF_K + r).
#: 60 is the value of its authors (Cormack, Clarke and Büttcher, SIGIR 2009), also llama-index's.
RRF_K = 60
#: Candidates each ranking gives the fusion: this many times the chunks asked for, at least 10.
FUSION_CANDIDATES = 4


class KnowledgeBaseError(Exception):
    """A knowledge-base action failed; ``str(error)`` is a sentence for the user."""


@dataclass
class FileEntry:
    """One indexed file: its SHA-256 (hex), number of chunks, and the ids of its documents."""

    sha256: str
    chunks: int
    doc_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class AddReport:
    """What adding files did: files indexed, files skipped as unchanged, chunks made, problems."""

    indexed: list[str]
    unchanged: list[str]
    chunks: int
    problems: list[str]


class KnowledgeBase:
    """One knowledge base: its files, its vector index on disk, and retrieval.

    Args:
        folder: where it is persisted.
        name: its display name.
        embed_model: the llama-index embedding model (utils.embeddings.build_embed_model).
    """

    def __init__(self, folder: Path, name: str, embed_model: BaseEmbedding) -> None:
        self.folder, self.name, self.embed_model = folder, name, embed_model
        self._lock = threading.Lock()
        self._keyword_lock = threading.Lock()  # apart from ``_lock``, held while files are indexed
        self._keyword: BM25Retriever | None = None
        self._keyword_size = 0
        manifest = folder / MANIFEST
        data: dict[str, Any] = (
            json.loads(manifest.read_text(encoding="utf-8")) if manifest.exists() else {"name": name, "files": {}}
        )
        self.files: dict[str, FileEntry] = {n: FileEntry(**e) for n, e in data["files"].items()}
        if (folder / "index" / "docstore.json").exists():
            storage = StorageContext.from_defaults(persist_dir=str(folder / "index"))
            self.index = load_index_from_storage(storage, embed_model=embed_model)
        else:
            self.index = VectorStoreIndex(nodes=[], embed_model=embed_model)

    @property
    def chunk_count(self) -> int:
        """Chunks in the index, over all files."""
        return sum(e.chunks for e in self.files.values())

    def add_files(
        self,
        files: list[tuple[str, bytes]],
        progress: Callable[[int, int, int], None] = lambda done, total, chunks: None,
    ) -> AddReport:
        """Index ``(file name, bytes)`` pairs; the rest still index when one fails.

        Args:
            files: the files to add; a name already present is replaced if its bytes changed.
            progress: called after each file with (files done, files in all, chunks so far).

        Returns:
            an AddReport; ``problems`` holds one sentence per file that could not be indexed.
        """
        indexed, unchanged, problems, chunks = [], [], [], 0
        splitter = SentenceSplitter(chunk_size=CHUNK_SIZE, chunk_overlap=CHUNK_OVERLAP)
        pending: list[BaseNode] = []  # nodes not embedded yet: embedding in batches is ~10x faster than one by one

        def flush(done: int) -> None:
            if pending:
                self.index.insert_nodes(list(pending))
                pending.clear()
            progress(done, len(files), chunks)

        with self._lock:
            for done, (name, data) in enumerate(files, start=1):
                digest = hashlib.sha256(data).hexdigest()
                old = self.files.get(name)
                if old is not None and old.sha256 == digest:
                    unchanged.append(name)
                else:
                    try:
                        documents = load_document(name, data)
                    except DocumentError as exc:
                        problems.append(str(exc))
                        continue
                    if old is not None:
                        flush(done - 1)
                        self._delete_docs(old.doc_ids)
                    for i, document in enumerate(documents):
                        document.id_ = f"{digest[:16]}-{i}"
                    nodes = splitter.get_nodes_from_documents(documents)
                    pending.extend(nodes)
                    self.files[name] = FileEntry(digest, len(nodes), [d.id_ for d in documents])
                    indexed.append(name)
                    chunks += len(nodes)
                if len(pending) >= EMBED_BATCH or done == len(files):
                    flush(done)
            flush(len(files))
            self.persist()
        return AddReport(indexed, unchanged, chunks, problems)

    def add_folder(self, folder: Path, progress: Callable[[int, int, int], None] = lambda d, t, c: None) -> AddReport:
        """Index every file directly in ``folder`` (not its sub-folders), sorted by name.

        Raises:
            KnowledgeBaseError: the folder does not exist or cannot be read.
        """
        if not folder.is_dir():
            raise KnowledgeBaseError(f"{folder} is not a folder on this machine.")
        try:
            files = [(p.name, p.read_bytes()) for p in sorted(folder.iterdir()) if p.is_file()]
        except OSError as exc:
            raise KnowledgeBaseError(f"Could not read {folder}: {exc.strerror or exc}.") from exc
        return self.add_files(files, progress)

    def remove_file(self, name: str) -> None:
        """Remove file ``name`` and its chunks from the knowledge base (a missing name is ignored)."""
        with self._lock:
            entry = self.files.pop(name, None)
            if entry is not None:
                self._delete_docs(entry.doc_ids)
                self.persist()

    def retrieve(self, query: str, top_k: int, threshold: float, mode: str = "hybrid") -> list[NodeWithScore]:
        """The chunks for ``query``, best first, each scored by its cosine similarity to it.

        Args:
            query: the question.
            top_k: most chunks returned.
            threshold: least cosine similarity (0 to 1) a chunk needs, in every mode: words
                change the order and bring in chunks the vectors ranked low, not unrelated ones.
            mode: one of ``RETRIEVAL_MODES``.

        Returns:
            At most ``top_k`` chunks; ``vector`` ranks by similarity, ``keyword`` by BM25 score,
            ``hybrid`` by the reciprocal rank fusion of both rankings (``RRF_K``).

        Raises:
            ValueError: ``mode`` is not one of ``RETRIEVAL_MODES``.
        """
        if mode not in RETRIEVAL_MODES:
            raise ValueError(f"Unknown retrieval mode {mode!r}: use one of {', '.join(RETRIEVAL_MODES)}.")
        if not self.files:
            return []
        bundle = QueryBundle(query, embedding=self.embed_model.get_query_embedding(query))
        if mode == "vector":
            nodes = self.index.as_retriever(similarity_top_k=top_k).retrieve(bundle)
            return [n for n in nodes if (n.score or 0.0) >= threshold]
        candidates = max(top_k * FUSION_CANDIDATES, 10)
        words = self._keyword_hits(bundle, candidates)
        if mode == "keyword":
            ranked = [self._scored(n, bundle) for n in words]
        else:
            meanings = self.index.as_retriever(similarity_top_k=candidates).retrieve(bundle)
            fused: dict[str, float] = {}
            for ranking in (words, meanings):
                for rank, found in enumerate(ranking, start=1):
                    fused[found.node.node_id] = fused.get(found.node.node_id, 0.0) + 1.0 / (RRF_K + rank)
            scored = {n.node.node_id: n for n in meanings}  # by cosine similarity already
            for found in words:
                if found.node.node_id not in scored:
                    scored[found.node.node_id] = self._scored(found, bundle)
            ranked = sorted(scored.values(), key=lambda n: fused[n.node.node_id], reverse=True)
        return [n for n in ranked if (n.score or 0.0) >= threshold][:top_k]

    def _keyword_hits(self, bundle: QueryBundle, top_k: int) -> list[NodeWithScore]:
        """The ``top_k`` chunks with the highest BM25 score above 0 for ``bundle``, best first. The
        BM25 index over every chunk is built on first use after a change (``persist`` drops it)."""
        with self._keyword_lock:
            if self._keyword is None:
                nodes = list(self.index.docstore.docs.values())
                self._keyword = BM25Retriever.from_defaults(nodes=nodes, language="en")
                self._keyword_size = len(nodes)
            self._keyword.similarity_top_k = min(top_k, self._keyword_size)
            found = self._keyword.retrieve(bundle)
        return [n for n in found if (n.score or 0.0) > 0]

    def _scored(self, found: NodeWithScore, bundle: QueryBundle) -> NodeWithScore:
        """``found`` scored by its cosine similarity to the question (its stored embedding, or one
        made from its text where the vector store cannot give it back)."""
        store = self.index.storage_context.vector_store
        if isinstance(store, SimpleVectorStore):
            embedding = store.get(found.node.node_id)
        else:
            embedding = self.embed_model.get_text_embedding(found.node.get_content())
        return NodeWithScore(node=found.node, score=similarity(bundle.embedding or [], embedding))

    def retriever(self, top_k: int, threshold: float, mode: str = "hybrid") -> BaseRetriever:
        """A llama-index retriever giving ``retrieve(query, top_k, threshold, mode)``, for query
        engines and tools."""
        return _KnowledgeRetriever(self, top_k, threshold, mode)

    def query_engine(self, llm: LLM, top_k: int, threshold: float, mode: str = "hybrid") -> BaseQueryEngine:
        """llama-index's query engine over this knowledge base, answering with ``llm`` from the
        chunks ``retrieve(query, top_k, threshold, mode)`` finds."""
        return RetrieverQueryEngine.from_args(self.retriever(top_k, threshold, mode), llm=llm)

    def _delete_docs(self, doc_ids: list[str]) -> None:
        for doc_id in doc_ids:
            self.index.delete_ref_doc(doc_id, delete_from_docstore=True)

    def persist(self) -> None:
        """Write the index and the manifest to the folder; the manifest is replaced atomically, last.

        Raises:
            OSError: the folder cannot be written.
        """
        with self._keyword_lock:
            self._keyword = None  # the chunks changed: BM25 is rebuilt on the next keyword search
        self.index.storage_context.persist(persist_dir=str(self.folder / "index"))
        data = {"name": self.name, "files": {n: asdict(e) for n, e in self.files.items()}}
        fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, ensure_ascii=False, indent=1)
        os.replace(tmp, self.folder / MANIFEST)


class _KnowledgeRetriever(BaseRetriever):
    """``KnowledgeBase.retrieve`` as a llama-index retriever."""

    def __init__(self, kb: KnowledgeBase, top_k: int, threshold: float, mode: str) -> None:
        super().__init__()
        self._kb, self._top_k, self._threshold, self._mode = kb, top_k, threshold, mode

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return self._kb.retrieve(query_bundle.query_str, self._top_k, self._threshold, self._mode)


class KnowledgeBases:
    """The knowledge bases under one folder (KNOWLEDGE_BASE_DIR), opened once and shared.

    Args:
        root: the folder; created when the first knowledge base is.
        embed_model_factory: makes the embedding model, called once on first need (it takes
            seconds to load).
    """

    def __init__(self, root: Path, embed_model_factory: Callable[[], BaseEmbedding]) -> None:
        self.root = root
        self._factory = embed_model_factory
        self._embed_model: BaseEmbedding | None = None
        self._open: dict[str, KnowledgeBase] = {}
        self._lock = threading.Lock()

    @property
    def embed_model(self) -> BaseEmbedding:
        """The embedding model, loaded on first use (seconds: it starts the embedding process)."""
        with self._lock:
            if self._embed_model is None:
                self._embed_model = self._factory()
            return self._embed_model

    def _folder(self, name: str) -> Path:
        return self.root / hashlib.sha1(name.encode("utf-8")).hexdigest()[:16]

    def names(self) -> list[str]:
        """Names of the existing knowledge bases, sorted."""
        if not self.root.is_dir():
            return []
        names = []
        for manifest in self.root.glob(f"*/{MANIFEST}"):
            try:
                names.append(json.loads(manifest.read_text(encoding="utf-8"))["name"])
            except (OSError, ValueError, KeyError):
                continue
        return sorted(names, key=str.casefold)

    def create(self, name: str) -> KnowledgeBase:
        """Create an empty knowledge base called ``name`` (trimmed).

        Raises:
            KnowledgeBaseError: the name is blank or taken, or the folder cannot be written.
        """
        name = name.strip()
        if not name:
            raise KnowledgeBaseError("Please enter a name for the knowledge base.")
        if name in self.names():
            raise KnowledgeBaseError(f"A knowledge base called {name!r} already exists.")
        folder = self._folder(name)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            kb = KnowledgeBase(folder, name, self.embed_model)
            kb.persist()
        except OSError as exc:
            raise KnowledgeBaseError(
                f"Could not create the knowledge base in {folder}: {exc.strerror or exc}."
            ) from exc
        self._open[name] = kb
        return kb

    def open(self, name: str) -> KnowledgeBase:
        """Return the knowledge base ``name``, loading it from disk the first time.

        Raises:
            KnowledgeBaseError: there is no such knowledge base.
        """
        if name not in self._open:
            folder = self._folder(name)
            if not (folder / MANIFEST).exists():
                raise KnowledgeBaseError(f"There is no knowledge base called {name!r}.")
            self._open[name] = KnowledgeBase(folder, name, self.embed_model)
        return self._open[name]

    def delete(self, name: str) -> None:
        """Delete knowledge base ``name`` and its files on disk (the indexed copies only)."""
        self._open.pop(name, None)
        shutil.rmtree(self._folder(name), ignore_errors=True)


def source_of(node: NodeWithScore) -> Source:
    """A retrieved chunk as a message's Source: file name, page or row, score, text."""
    meta = node.node.metadata
    if "page" in meta:
        where = f"page {meta['page']}"
    elif "row" in meta:
        where = f"{meta['sheet']}, row {meta['row']}" if "sheet" in meta else f"row {meta['row']}"
    else:
        where = ""
    return Source(
        file_name=str(meta.get("file_name", "?")),
        where=where,
        score=round(float(node.score or 0.0), 4),
        text=node.node.get_content(),
    )


#: What a knowledge-base chat answers when no chunk passes the similarity threshold (no model is asked).
NOTHING_FOUND = "I found nothing about this in the knowledge base."
