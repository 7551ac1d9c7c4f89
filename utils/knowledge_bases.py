"""Knowledge bases: named collections of files, indexed with llama-index, and retrieval.

Chatting with one is ``controller.engines.KnowledgeEngine``'s. Two stores keep them, with one
contract (``KnowledgeBase`` and ``KnowledgeBaseStore``):

- the folder (``KnowledgeBases``, the default): each knowledge base lives in
  ``KNOWLEDGE_BASE_DIR/<id>/``: ``index/`` is the persisted ``VectorStoreIndex``
  (``StorageContext.persist``), ``originals/<SHA-256>`` keeps each file's bytes, and
  ``manifest.json`` lists its files with their SHA-256, chunk count and document ids. At start an
  index is loaded from disk, not re-embedded. One process indexes a folder at a time.
- PostgreSQL with pgvector (``utils.pg_knowledge_bases``), shared by every instance and worker.

``open_knowledge_bases`` picks one from the settings. In both, a file whose bytes did not change is
not embedded again, and a changed file replaces its old chunks.

Retrieval (``KnowledgeBase.retrieve``) finds chunks by meaning (``vector``: cosine similarity of
all-MiniLM-L6-v2 embeddings), by words (``keyword``: BM25 through llama-index's BM25Retriever on
bm25s in the folder, PostgreSQL's full-text search there) or both (``hybrid``, the default): the
two rankings fused by reciprocal rank fusion, so a chunk that shares the question's rare words is
found even when its embedding is not the closest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock
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

if TYPE_CHECKING:
    from settings import Settings

log = logging.getLogger(__name__)

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


@dataclass
class IndexedFile:
    """One file as a store keeps it: its name, manifest entry, embedded chunks, original bytes (None
    where a store made before originals were kept has none) and the entry it replaces, if any."""

    name: str
    entry: FileEntry
    nodes: list[BaseNode]
    data: bytes | None
    replaces: FileEntry | None = None


def knowledge_base_id(name: str) -> str:
    """The id a knowledge base is stored under: ``kb`` and 16 hex digits of the SHA-1 of its name.
    Only letters and digits, and never a number, so it is safe in SQL text and metadata filters."""
    return "kb" + hashlib.sha1(name.encode("utf-8")).hexdigest()[:16]


class KnowledgeBase(ABC):
    """One knowledge base: its files, their chunks and retrieval. The stores give the storage
    (``_indexing``, ``_store``, ``_remove``, ``files``) and the two rankings (``_vector_hits``,
    ``_keyword_hits``, ``_embeddings``); adding files and fusing rankings are the same in both.

    Args:
        name: its display name.
        embed_model: the llama-index embedding model (utils.embeddings.build_embed_model).
    """

    def __init__(self, name: str, embed_model: BaseEmbedding) -> None:
        self.name, self.embed_model = name, embed_model

    @property
    @abstractmethod
    def files(self) -> dict[str, FileEntry]:
        """The indexed files by name, as stored now."""

    @property
    def chunk_count(self) -> int:
        """Chunks in the index, over all files."""
        return sum(e.chunks for e in self.files.values())

    @abstractmethod
    def _indexing(self) -> Any:
        """A context manager held while files change: it excludes other indexers of this knowledge
        base and gives the files as they are now (a dict the caller may update)."""

    @abstractmethod
    def _store(self, files: list[IndexedFile]) -> None:
        """Keep each file's embedded chunks in place of its old ones (``_indexing`` is held); a file
        becomes visible to retrieval whole or not at all."""

    @abstractmethod
    def _remove(self, name: str, entry: FileEntry) -> None:
        """Delete file ``name`` and its chunks (``_indexing`` is held)."""

    @abstractmethod
    def _vector_hits(self, bundle: QueryBundle, top_k: int) -> list[NodeWithScore]:
        """The ``top_k`` chunks closest to ``bundle.embedding``, scored by cosine similarity, best first."""

    @abstractmethod
    def _keyword_hits(self, bundle: QueryBundle, top_k: int) -> list[NodeWithScore]:
        """The ``top_k`` chunks sharing most words with ``bundle.query_str``, best first (none
        sharing none)."""

    @abstractmethod
    def _embeddings(self, node_ids: list[str]) -> dict[str, list[float]]:
        """The stored embeddings of chunks ``node_ids``."""

    @abstractmethod
    def indexed_files(self) -> Iterator[IndexedFile]:
        """Every file with its chunks (embeddings included) and original bytes, for copying."""

    def add_files(
        self,
        files: list[tuple[str, bytes]],
        progress: Callable[[int, int, int], None] = lambda done, total, chunks: None,
    ) -> AddReport:
        """Index ``(file name, bytes)`` pairs; the rest still index when one fails.

        Args:
            files: the files to add; a name already present is replaced if its bytes changed.
            progress: called after each batch with (files done, files in all, chunks so far).

        Returns:
            an AddReport; ``problems`` holds one sentence per file that could not be indexed.

        Raises:
            KnowledgeBaseError: the store cannot be written, or the knowledge base was deleted.
        """
        indexed, unchanged, problems, chunks = [], [], [], 0
        splitter = SentenceSplitter(chunk_size=CHUNK_SIZE, chunk_overlap=CHUNK_OVERLAP)
        pending: list[IndexedFile] = []  # embedding in batches is ~10x faster than one by one

        def flush(done: int) -> None:
            if pending:
                self.embed_model([node for file in pending for node in file.nodes])
                self._store(list(pending))
                pending.clear()
            progress(done, len(files), chunks)

        with self._indexing() as current:
            for done, (name, data) in enumerate(files, start=1):
                digest = hashlib.sha256(data).hexdigest()
                old = current.get(name)
                if old is not None and old.sha256 == digest:
                    unchanged.append(name)
                    continue
                try:
                    documents = load_document(name, data)
                except DocumentError as exc:
                    problems.append(str(exc))
                    continue
                for i, document in enumerate(documents):
                    document.id_ = f"{digest[:16]}-{i}"
                nodes = splitter.get_nodes_from_documents(documents)
                current[name] = FileEntry(digest, len(nodes), [d.id_ for d in documents])
                pending.append(IndexedFile(name, current[name], list(nodes), data, old))
                indexed.append(name)
                chunks += len(nodes)
                if sum(len(f.nodes) for f in pending) >= EMBED_BATCH:
                    flush(done)
            flush(len(files))
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

    def import_files(self, files: list[IndexedFile]) -> None:
        """Keep already embedded files as they are (``KnowledgeBase.indexed_files`` of another store,
        or a benchmark's made-up chunks): nothing is embedded again.

        Raises:
            KnowledgeBaseError: the store cannot be written, or the knowledge base was deleted.
        """
        with self._indexing() as current:
            for file in files:
                file.replaces = current.get(file.name)
                current[file.name] = file.entry
            self._store(files)

    def remove_file(self, name: str) -> None:
        """Remove file ``name`` and its chunks from the knowledge base (a missing name is ignored)."""
        with self._indexing() as current:
            entry = current.pop(name, None)
            if entry is not None:
                self._remove(name, entry)

    def retrieve(self, query: str, top_k: int, threshold: float, mode: str = "hybrid") -> list[NodeWithScore]:
        """The chunks for ``query``, best first, each scored by its cosine similarity to it.

        Args:
            query: the question.
            top_k: most chunks returned.
            threshold: least cosine similarity (0 to 1) a chunk needs, in every mode: words
                change the order and bring in chunks the vectors ranked low, not unrelated ones.
            mode: one of ``RETRIEVAL_MODES``.

        Returns:
            At most ``top_k`` chunks; ``vector`` ranks by similarity, ``keyword`` by the words'
            score (BM25, or PostgreSQL's ts_rank), ``hybrid`` by the reciprocal rank fusion of both
            rankings (``RRF_K``).

        Raises:
            ValueError: ``mode`` is not one of ``RETRIEVAL_MODES``.
        """
        if mode not in RETRIEVAL_MODES:
            raise ValueError(f"Unknown retrieval mode {mode!r}: use one of {', '.join(RETRIEVAL_MODES)}.")
        bundle = QueryBundle(query, embedding=self.embed_model.get_query_embedding(query))
        if mode == "vector":
            return [n for n in self._vector_hits(bundle, top_k) if (n.score or 0.0) >= threshold]
        candidates = max(top_k * FUSION_CANDIDATES, 10)
        words = self._keyword_hits(bundle, candidates)
        meanings = self._vector_hits(bundle, candidates) if mode == "hybrid" else []
        scored = {n.node.node_id: n for n in meanings}  # by cosine similarity already
        missing = [n.node.node_id for n in words if n.node.node_id not in scored]
        embeddings = self._embeddings(missing) if missing else {}
        for found in words:
            if found.node.node_id not in scored:
                embedding = embeddings.get(found.node.node_id)
                if embedding is None:  # not stored: made from its text
                    embedding = self.embed_model.get_text_embedding(found.node.get_content())
                scored[found.node.node_id] = NodeWithScore(
                    node=found.node, score=similarity(bundle.embedding or [], embedding)
                )
        fused: dict[str, float] = {}
        for ranking in (words, meanings):
            for rank, found in enumerate(ranking, start=1):
                fused[found.node.node_id] = fused.get(found.node.node_id, 0.0) + 1.0 / (RRF_K + rank)
        ranked = sorted(scored.values(), key=lambda n: fused[n.node.node_id], reverse=True)
        return [n for n in ranked if (n.score or 0.0) >= threshold][:top_k]

    def retriever(self, top_k: int, threshold: float, mode: str = "hybrid") -> BaseRetriever:
        """A llama-index retriever giving ``retrieve(query, top_k, threshold, mode)``, for query
        engines and tools."""
        return _KnowledgeRetriever(self, top_k, threshold, mode)

    def query_engine(self, llm: LLM, top_k: int, threshold: float, mode: str = "hybrid") -> BaseQueryEngine:
        """llama-index's query engine over this knowledge base, answering with ``llm`` from the
        chunks ``retrieve(query, top_k, threshold, mode)`` finds."""
        return RetrieverQueryEngine.from_args(self.retriever(top_k, threshold, mode), llm=llm)


class FolderKnowledgeBase(KnowledgeBase):
    """A knowledge base in a folder: llama-index's SimpleVectorStore and docstore persisted there,
    BM25 over its chunks for words, the originals and the manifest beside them.

    Args:
        folder: where it is persisted.
        name: its display name.
        embed_model: the llama-index embedding model.
    """

    def __init__(self, folder: Path, name: str, embed_model: BaseEmbedding) -> None:
        super().__init__(name, embed_model)
        self.folder = folder
        self._lock = threading.Lock()
        self._keyword_lock = threading.Lock()  # apart from ``_lock``, held while files are indexed
        self._keyword: BM25Retriever | None = None
        self._keyword_size = 0
        self._load()

    def _load(self) -> None:
        """Read the manifest and the index from the folder (an empty index where there is none);
        nothing changes when either cannot be read.

        Raises:
            OSError, ValueError: the folder cannot be read.
        """
        manifest = self.folder / MANIFEST
        version = self._manifest_version()
        data: dict[str, Any] = (
            json.loads(manifest.read_text(encoding="utf-8")) if manifest.exists() else {"name": self.name, "files": {}}
        )
        files = {n: FileEntry(**e) for n, e in data["files"].items()}
        if (self.folder / "index" / "docstore.json").exists():
            storage = StorageContext.from_defaults(persist_dir=str(self.folder / "index"))
            index = load_index_from_storage(storage, embed_model=self.embed_model)
        else:
            index = VectorStoreIndex(nodes=[], embed_model=self.embed_model)
        self._loaded, self._files, self.index = version, files, index

    def _manifest_version(self) -> int | None:
        try:
            return (self.folder / MANIFEST).stat().st_mtime_ns
        except OSError:
            return None

    def _refresh(self) -> None:
        """Load the folder again if another process changed it since (its manifest is newer); not
        while this process is indexing it."""
        if self._manifest_version() != self._loaded and self._lock.acquire(blocking=False):
            try:
                self._load()
                with self._keyword_lock:
                    self._keyword = None
            except (OSError, ValueError):
                pass  # written at this moment: what was loaded before stays until the next look
            finally:
                self._lock.release()

    @property
    def files(self) -> dict[str, FileEntry]:
        """The indexed files by name (the manifest as last written, by any process)."""
        self._refresh()
        return self._files

    @contextmanager
    def _indexing(self) -> Iterator[dict[str, FileEntry]]:
        # The thread lock, then the folder's lock file: one indexer at a time, in every process.
        with self._lock, FileLock(str(self.folder / "indexing.lock")):
            if self._manifest_version() != self._loaded:
                self._load()
            current = dict(self._files)
            try:
                yield current
            except BaseException:
                self._load()  # what is on disk, not an index changed half-way
                raise
            self._files = current
            self.persist()

    def _store(self, files: list[IndexedFile]) -> None:
        for file in files:
            if file.replaces is not None:
                self._delete_docs(file.replaces.doc_ids)
            self.index.insert_nodes(file.nodes)
            if file.data is not None:
                originals = self.folder / "originals"
                originals.mkdir(exist_ok=True)
                (originals / file.entry.sha256).write_bytes(file.data)

    def _remove(self, name: str, entry: FileEntry) -> None:
        self._delete_docs(entry.doc_ids)

    def _vector_hits(self, bundle: QueryBundle, top_k: int) -> list[NodeWithScore]:
        if not self.files:
            return []
        return self.index.as_retriever(similarity_top_k=top_k).retrieve(bundle)

    def _keyword_hits(self, bundle: QueryBundle, top_k: int) -> list[NodeWithScore]:
        """BM25's hits above 0. Its index over every chunk is built on first use after a change
        (``persist`` drops it)."""
        if not self._files:
            return []
        with self._keyword_lock:
            if self._keyword is None:
                nodes = list(self.index.docstore.docs.values())
                self._keyword = BM25Retriever.from_defaults(nodes=nodes, language="en")
                self._keyword_size = len(nodes)
            self._keyword.similarity_top_k = min(top_k, self._keyword_size)
            found = self._keyword.retrieve(bundle)
        return [n for n in found if (n.score or 0.0) > 0]

    def _embeddings(self, node_ids: list[str]) -> dict[str, list[float]]:
        store = self.index.storage_context.vector_store
        assert isinstance(store, SimpleVectorStore)
        return {node_id: store.get(node_id) for node_id in node_ids}

    def indexed_files(self) -> Iterator[IndexedFile]:
        """Every file with its chunks (embeddings included) and, where kept, its original bytes."""
        docstore = self.index.docstore
        by_doc: dict[str, list[BaseNode]] = {}
        for node in docstore.docs.values():
            by_doc.setdefault(node.ref_doc_id or "", []).append(node)
        for name, entry in sorted(self._files.items()):
            nodes = [n for doc_id in entry.doc_ids for n in by_doc.get(doc_id, [])]
            embeddings = self._embeddings([n.node_id for n in nodes])
            for node in nodes:
                node.embedding = embeddings[node.node_id]
            original = self.folder / "originals" / entry.sha256
            yield IndexedFile(name, entry, nodes, original.read_bytes() if original.is_file() else None)

    def _delete_docs(self, doc_ids: list[str]) -> None:
        for doc_id in doc_ids:
            self.index.delete_ref_doc(doc_id, delete_from_docstore=True)

    def persist(self) -> None:
        """Write the index and the manifest to the folder; the manifest is replaced atomically, last.
        Originals of files no longer listed are deleted.

        Raises:
            OSError: the folder cannot be written.
        """
        with self._keyword_lock:
            self._keyword = None  # the chunks changed: BM25 is rebuilt on the next keyword search
        self.index.storage_context.persist(persist_dir=str(self.folder / "index"))
        data = {"name": self.name, "files": {n: asdict(e) for n, e in self._files.items()}}
        fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, ensure_ascii=False, indent=1)
        os.replace(tmp, self.folder / MANIFEST)
        self._loaded = self._manifest_version()
        kept = {e.sha256 for e in self._files.values()}
        for original in (self.folder / "originals").glob("*"):
            if original.name not in kept:
                original.unlink(missing_ok=True)


class _KnowledgeRetriever(BaseRetriever):
    """``KnowledgeBase.retrieve`` as a llama-index retriever."""

    def __init__(self, kb: KnowledgeBase, top_k: int, threshold: float, mode: str) -> None:
        super().__init__()
        self._kb, self._top_k, self._threshold, self._mode = kb, top_k, threshold, mode

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return self._kb.retrieve(query_bundle.query_str, self._top_k, self._threshold, self._mode)


class KnowledgeBaseStore(ABC):
    """Where knowledge bases are kept: their names, creating, opening and deleting them.

    Args:
        embed_model_factory: makes the embedding model, called once on first need (it takes
            seconds to load).
    """

    #: What the page says once about how this store was chosen (e.g. why not PostgreSQL), or None.
    notice: str | None = None

    def __init__(self, embed_model_factory: Callable[[], BaseEmbedding]) -> None:
        self._factory = embed_model_factory
        self._embed_model: BaseEmbedding | None = None
        self._embed_lock = threading.Lock()

    @property
    def embed_model(self) -> BaseEmbedding:
        """The embedding model, loaded on first use (seconds: it starts the embedding process)."""
        with self._embed_lock:
            if self._embed_model is None:
                self._embed_model = self._factory()
            return self._embed_model

    @abstractmethod
    def names(self) -> list[str]:
        """Names of the existing knowledge bases, sorted."""

    @abstractmethod
    def create(self, name: str) -> KnowledgeBase:
        """Create an empty knowledge base called ``name`` (trimmed).

        Raises:
            KnowledgeBaseError: the name is blank or taken, or the store cannot be written.
        """

    @abstractmethod
    def open(self, name: str) -> KnowledgeBase:
        """Return the knowledge base ``name``.

        Raises:
            KnowledgeBaseError: there is no such knowledge base.
        """

    @abstractmethod
    def delete(self, name: str) -> None:
        """Delete knowledge base ``name`` with its chunks and stored originals."""

    def _new_name(self, name: str) -> str:
        """``name`` trimmed, checked to be neither blank nor taken.

        Raises:
            KnowledgeBaseError: it is blank or taken.
        """
        name = name.strip()
        if not name:
            raise KnowledgeBaseError("Please enter a name for the knowledge base.")
        if name in self.names():
            raise KnowledgeBaseError(f"A knowledge base called {name!r} already exists.")
        return name


class KnowledgeBases(KnowledgeBaseStore):
    """The knowledge bases under one folder (KNOWLEDGE_BASE_DIR), opened once and shared.

    Args:
        root: the folder; created when the first knowledge base is.
        embed_model_factory: makes the embedding model, called once on first need.
    """

    def __init__(self, root: Path, embed_model_factory: Callable[[], BaseEmbedding]) -> None:
        super().__init__(embed_model_factory)
        self.root = root
        self._open: dict[str, FolderKnowledgeBase] = {}

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

    def create(self, name: str) -> FolderKnowledgeBase:
        """Create an empty knowledge base called ``name`` (trimmed).

        Raises:
            KnowledgeBaseError: the name is blank or taken, or the folder cannot be written.
        """
        name = self._new_name(name)
        folder = self._folder(name)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            kb = FolderKnowledgeBase(folder, name, self.embed_model)
            kb.persist()
        except OSError as exc:
            raise KnowledgeBaseError(
                f"Could not create the knowledge base in {folder}: {exc.strerror or exc}."
            ) from exc
        self._open[name] = kb
        return kb

    def open(self, name: str) -> FolderKnowledgeBase:
        """Return the knowledge base ``name``, loading it from disk the first time.

        Raises:
            KnowledgeBaseError: there is no such knowledge base.
        """
        if name not in self._open:
            folder = self._folder(name)
            if not (folder / MANIFEST).exists():
                raise KnowledgeBaseError(f"There is no knowledge base called {name!r}.")
            self._open[name] = FolderKnowledgeBase(folder, name, self.embed_model)
        return self._open[name]

    def delete(self, name: str) -> None:
        """Delete knowledge base ``name`` and its files on disk (the indexed copies only)."""
        self._open.pop(name, None)
        shutil.rmtree(self._folder(name), ignore_errors=True)


def open_knowledge_bases(
    url: str | None, folder: Path, conversations: str, embed_model_factory: Callable[[], BaseEmbedding]
) -> KnowledgeBaseStore:
    """The knowledge-base store the settings name.

    Args:
        url: KNOWLEDGE_BASE_URL: ``postgresql://...`` (pgvector), a folder, or None.
        folder: KNOWLEDGE_BASE_DIR, the folder used when ``url`` is None and the conversations are
            not in a PostgreSQL that offers pgvector.
        conversations: where conversations are kept (CONVERSATIONS_URL or the file): by default
            knowledge bases follow it into PostgreSQL when that server offers the ``vector``
            extension (``pg_available_extensions``); otherwise they stay in ``folder`` and the
            store's ``notice`` (also logged once) says why, with the ``CREATE EXTENSION vector`` hint.
        embed_model_factory: makes the embedding model, on first need.

    Raises:
        KnowledgeBaseError: ``url`` is a PostgreSQL that cannot be reached or has no pgvector.
    """
    from utils.pg_knowledge_bases import POSTGRES_SCHEMES, PostgresKnowledgeBases, offers_vector

    if url and url.strip().startswith(POSTGRES_SCHEMES):
        return PostgresKnowledgeBases(url.strip(), embed_model_factory)
    if url and url.strip():
        return KnowledgeBases(Path(url.strip()).expanduser(), embed_model_factory)  # a folder
    if conversations.startswith(POSTGRES_SCHEMES):
        reason = offers_vector(conversations)
        if reason is None:
            return PostgresKnowledgeBases(conversations, embed_model_factory)
        store = KnowledgeBases(folder, embed_model_factory)
        store.notice = (
            f"Knowledge bases are kept in the folder {folder} on this machine, not in PostgreSQL: {reason} "
            "To share them between instances, run `CREATE EXTENSION vector;` in that database as a superuser "
            "(the server needs the pgvector package) or set KNOWLEDGE_BASE_URL."
        )
        log.warning("%s", store.notice)
        return store
    return KnowledgeBases(folder, embed_model_factory)


def knowledge_bases_for(settings: Settings, embed_model_factory: Callable[[], BaseEmbedding]) -> KnowledgeBaseStore:
    """``open_knowledge_bases`` with KNOWLEDGE_BASE_URL, KNOWLEDGE_BASE_DIR and the conversations'
    location from ``settings``.

    Raises:
        KnowledgeBaseError: as ``open_knowledge_bases``.
    """
    return open_knowledge_bases(
        settings.knowledge_base_location,
        settings.knowledge_base_dir,
        settings.conversations_location,
        embed_model_factory,
    )


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
