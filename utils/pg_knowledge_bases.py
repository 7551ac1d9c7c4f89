"""Knowledge bases in PostgreSQL with pgvector (KNOWLEDGE_BASE_URL=postgresql://...), shared by every
instance, the chat server and the workers.

- Chunks: one table for all knowledge bases, kept by llama-index's ``PGVectorStore``
  (``data_parley_kb_chunks``: text, metadata as JSONB, a 384-dimension ``vector`` with an HNSW index
  for cosine distance, and a generated ``tsvector`` with a GIN index for words). Each chunk's
  metadata ``kb`` holds its knowledge base's id (``knowledge_base_id``), and every query filters on it.
- ``parley_knowledge_bases`` (id, name) and ``parley_kb_files`` (the manifest: one row per file with
  its SHA-256, chunk count, document ids and original bytes).

Indexing is safe with several instances at once: whoever changes a knowledge base's files holds
its advisory lock (``pg_advisory_lock``) meanwhile, and reads the manifest after taking it. A file's
chunks are written under a staging ``kb`` value first, and made visible in one transaction with its
manifest row, which also deletes the chunks it replaces: retrieval sees a file whole or not at all.
Staging chunks left by a killed indexer are deleted by the next one.

Retrieval: ``vector`` is PGVectorStore's cosine search (HNSW; pgvector's iterative index scan keeps
a filtered search from coming back short); ``keyword`` is its full-text search (``ts_rank`` over
``to_tsvector('english', text)``, any of the question's words); ``hybrid`` fuses both as
``KnowledgeBase.retrieve`` says.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

import psycopg
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.schema import BaseNode, NodeWithScore, QueryBundle
from llama_index.core.vector_stores.types import (
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)
from psycopg.types.json import Jsonb
from psycopg_pool import PoolTimeout
from sqlalchemy.exc import SQLAlchemyError

from model.postgres_store import open_pool
from model.store import mask_url
from utils.knowledge_bases import (
    FileEntry,
    IndexedFile,
    KnowledgeBase,
    KnowledgeBaseError,
    KnowledgeBaseStore,
    knowledge_base_id,
)

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
#: PGVectorStore's table is ``data_`` and this name.
CHUNKS_TABLE = "parley_kb_chunks"
CHUNKS = f"data_{CHUNKS_TABLE}"
#: Dimensions of all-MiniLM-L6-v2's embeddings (utils.embeddings).
EMBED_DIM = 384
#: HNSW's build and search settings: pgvector's defaults (m 16, ef_construction 64, ef_search 40).
HNSW = {"hnsw_m": 16, "hnsw_ef_construction": 64, "hnsw_ef_search": 40, "hnsw_dist_method": "vector_cosine_ops"}
#: Seconds to wait for a connection.
CONNECT_TIMEOUT = 5.0
#: Advisory lock held while the tables are created (two instances starting at once).
SCHEMA_LOCK = 727_002

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS parley_knowledge_bases (
    id text PRIMARY KEY,
    name text NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS parley_kb_files (
    kb_id text NOT NULL REFERENCES parley_knowledge_bases (id) ON DELETE CASCADE,
    name text NOT NULL,
    sha256 text NOT NULL,
    chunks integer NOT NULL,
    doc_ids jsonb NOT NULL,
    data bytea,
    PRIMARY KEY (kb_id, name)
);
CREATE INDEX IF NOT EXISTS {CHUNKS}_kb ON {CHUNKS} ((metadata_->>'kb'));
"""


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


#: What fails when the database cannot be reached or refuses: said as a KnowledgeBaseError.
DATABASE_ERRORS = (psycopg.Error, PoolTimeout, SQLAlchemyError)

F = TypeVar("F", bound=Callable[..., Any])


def _said(method: F) -> F:
    """``method`` with database failures raised as a KnowledgeBaseError saying so."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except DATABASE_ERRORS as exc:
            raise KnowledgeBaseError(
                f"The knowledge bases' database could not be used ({_reason(exc)}). Please try again in a moment."
            ) from exc

    return cast(F, wrapper)


def offers_vector(url: str) -> str | None:
    """None if the PostgreSQL at ``url`` offers the ``vector`` extension (``pg_available_extensions``),
    else a sentence saying why knowledge bases cannot be kept there."""
    try:
        with psycopg.connect(url, connect_timeout=int(CONNECT_TIMEOUT)) as conn:
            row = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone()
    except psycopg.Error as exc:
        return f"the database at {mask_url(url)} could not be reached ({_reason(exc)})."
    return None if row else f"the PostgreSQL at {mask_url(url)} does not offer the pgvector extension."


def _sqlalchemy_url(url: str, driver: str) -> str:
    return f"postgresql+{driver}://" + url.split("://", 1)[1]


class PostgresKnowledgeBase(KnowledgeBase):
    """One knowledge base in PostgreSQL; made by ``PostgresKnowledgeBases``.

    Args:
        owner: the store it belongs to (its pool and vector store).
        kb_id: its id (``knowledge_base_id`` of its name).
        name: its display name.
    """

    def __init__(self, owner: PostgresKnowledgeBases, kb_id: str, name: str) -> None:
        super().__init__(name, owner.embed_model)
        self._owner, self.id = owner, kb_id
        self._filters = MetadataFilters(filters=[MetadataFilter(key="kb", value=kb_id)])
        self._conn: psycopg.Connection[Any] | None = None

    @property
    @_said
    def files(self) -> dict[str, FileEntry]:
        """The indexed files by name, read from the database."""
        with self._owner.pool.connection() as conn:
            return self._read_files(conn)

    def _read_files(self, conn: psycopg.Connection[Any]) -> dict[str, FileEntry]:
        rows = conn.execute(
            "SELECT name, sha256, chunks, doc_ids FROM parley_kb_files WHERE kb_id = %s", (self.id,)
        ).fetchall()
        return {name: FileEntry(sha, chunks, list(doc_ids)) for name, sha, chunks, doc_ids in rows}

    @contextmanager
    def _indexing(self) -> Iterator[dict[str, FileEntry]]:
        try:
            with self._owner.locked(self.id) as conn:
                if conn.execute("SELECT 1 FROM parley_knowledge_bases WHERE id = %s", (self.id,)).fetchone() is None:
                    raise KnowledgeBaseError(f"The knowledge base {self.name!r} was deleted.")
                conn.execute(  # staging chunks of an indexer that was killed
                    f"DELETE FROM {CHUNKS} WHERE metadata_->>'kb' LIKE %s", (f"pending:{self.id}:%",)
                )
                self._conn = conn
                try:
                    yield self._read_files(conn)
                finally:
                    self._conn = None
        except DATABASE_ERRORS as exc:
            raise KnowledgeBaseError(
                f"The files could not be stored in the knowledge base {self.name!r} ({_reason(exc)}); "
                "the files indexed before are kept. Please try again."
            ) from exc

    def _store(self, files: list[IndexedFile]) -> None:
        vector_store = self._owner.vector_store
        for file in files:
            staging = f"pending:{self.id}:{uuid.uuid4().hex}"
            for node in file.nodes:
                node.metadata["kb"] = staging
                for excluded in (node.excluded_llm_metadata_keys, node.excluded_embed_metadata_keys):
                    if "kb" not in excluded:
                        excluded.append("kb")
            vector_store.add(file.nodes)
            conn = self._locked_connection()
            with conn.transaction():
                if file.replaces is not None:
                    self._delete_chunks(conn, file.replaces.doc_ids)
                conn.execute(
                    f"UPDATE {CHUNKS} SET metadata_ = jsonb_set(metadata_, '{{kb}}', to_jsonb(%s::text)) "
                    "WHERE metadata_->>'kb' = %s",
                    (self.id, staging),
                )
                conn.execute(
                    "INSERT INTO parley_kb_files (kb_id, name, sha256, chunks, doc_ids, data) "
                    "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (kb_id, name) DO UPDATE SET "
                    "sha256 = EXCLUDED.sha256, chunks = EXCLUDED.chunks, doc_ids = EXCLUDED.doc_ids, "
                    "data = EXCLUDED.data",
                    (self.id, file.name, file.entry.sha256, file.entry.chunks, Jsonb(file.entry.doc_ids), file.data),
                )
            for node in file.nodes:
                node.metadata["kb"] = self.id
        # The planner picks between the HNSW index and reading this knowledge base's chunks through
        # the ``kb`` index (exact, right for a small one) by how many chunks it believes each
        # knowledge base has. Until autovacuum next analyzes the table, a new large knowledge base
        # looks empty and every query reads and sorts all its chunks (at 10,000 chunks: 9x slower).
        self._locked_connection().execute(f"ANALYZE {CHUNKS}")

    def _delete_chunks(self, conn: psycopg.Connection[Any], doc_ids: list[str]) -> None:
        conn.execute(
            f"DELETE FROM {CHUNKS} WHERE metadata_->>'kb' = %s AND metadata_->>'ref_doc_id' = ANY(%s)",
            (self.id, doc_ids),
        )

    def _locked_connection(self) -> psycopg.Connection[Any]:
        """The connection holding this knowledge base's advisory lock (inside ``_indexing`` only)."""
        assert self._conn is not None, "called outside _indexing"
        return self._conn

    def _remove(self, name: str, entry: FileEntry) -> None:
        conn = self._locked_connection()
        with conn.transaction():
            self._delete_chunks(conn, entry.doc_ids)
            conn.execute("DELETE FROM parley_kb_files WHERE kb_id = %s AND name = %s", (self.id, name))

    def _query(self, query: VectorStoreQuery) -> list[NodeWithScore]:
        result = self._owner.vector_store.query(query)
        nodes, scores = result.nodes or [], result.similarities or []
        return [NodeWithScore(node=n, score=float(s)) for n, s in zip(nodes, scores, strict=False)]

    @_said
    def _vector_hits(self, bundle: QueryBundle, top_k: int) -> list[NodeWithScore]:
        return self._query(
            VectorStoreQuery(query_embedding=bundle.embedding, similarity_top_k=top_k, filters=self._filters)
        )

    @_said
    def _keyword_hits(self, bundle: QueryBundle, top_k: int) -> list[NodeWithScore]:
        return self._query(
            VectorStoreQuery(
                query_str=bundle.query_str,
                similarity_top_k=top_k,
                sparse_top_k=top_k,
                filters=self._filters,
                mode=VectorStoreQueryMode.TEXT_SEARCH,
            )
        )

    @_said
    def _embeddings(self, node_ids: list[str]) -> dict[str, list[float]]:
        nodes = self._owner.vector_store.get_nodes(node_ids=node_ids, filters=self._filters)
        return {n.node_id: [float(x) for x in n.embedding] for n in nodes if n.embedding is not None}

    def indexed_files(self) -> Iterator[IndexedFile]:
        """Every file with its chunks (embeddings included) and original bytes."""
        with self._owner.pool.connection() as conn:
            rows = conn.execute(
                "SELECT name, sha256, chunks, doc_ids, data FROM parley_kb_files WHERE kb_id = %s ORDER BY name",
                (self.id,),
            ).fetchall()
        for name, sha, chunks, doc_ids, data in rows:
            filters = MetadataFilters(
                filters=[
                    *self._filters.filters,
                    MetadataFilter(key="ref_doc_id", value=list(doc_ids), operator=FilterOperator.IN),
                ]
            )
            nodes: list[BaseNode] = self._owner.vector_store.get_nodes(filters=filters) if doc_ids else []
            for node in nodes:
                node.embedding = [float(x) for x in node.embedding] if node.embedding is not None else None
            yield IndexedFile(name, FileEntry(sha, chunks, list(doc_ids)), nodes, bytes(data) if data else None)


class PostgresKnowledgeBases(KnowledgeBaseStore):
    """The knowledge bases in one PostgreSQL database with pgvector.

    Args:
        url: a libpq URL, ``postgresql://user:password@host:port/database``.
        embed_model_factory: makes the embedding model, called once on first need.

    Raises:
        KnowledgeBaseError: the server cannot be reached within CONNECT_TIMEOUT seconds, it has no
            pgvector, or the tables cannot be made; the sentence names the URL, password masked.
    """

    def __init__(self, url: str, embed_model_factory: Callable[[], BaseEmbedding]) -> None:
        super().__init__(embed_model_factory)
        self.location = mask_url(url)
        reason = offers_vector(url)
        if reason is not None:
            raise KnowledgeBaseError(
                f"Knowledge bases cannot be kept in PostgreSQL: {reason} A deployer installs pgvector on the "
                "server and runs `CREATE EXTENSION vector;` in the database, or sets KNOWLEDGE_BASE_URL to a folder."
            )
        from llama_index.vector_stores.postgres import PGVectorStore

        try:
            self.vector_store = PGVectorStore.from_params(
                connection_string=_sqlalchemy_url(url, "psycopg2"),
                async_connection_string=_sqlalchemy_url(url, "asyncpg"),
                table_name=CHUNKS_TABLE,
                embed_dim=EMBED_DIM,
                hybrid_search=True,
                text_search_config="english",
                use_jsonb=True,
                hnsw_kwargs=dict(HNSW),
                # pgvector's iterative scan: a search filtered to one knowledge base goes on through
                # the HNSW graph until it has its top k (or the table ends), in distance order.
                create_engine_kwargs={
                    "pool_pre_ping": True,
                    "connect_args": {"options": "-c hnsw.iterative_scan=strict_order"},
                },
            )
            self.vector_store.initialization_fail_on_error = True
            self.vector_store._initialize()  # tables and indexes now, not at the first query
            self.pool = open_pool(url, 8, "parley-kb")
            with self.pool.connection() as conn, conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                conn.execute(SCHEMA)
        except (PoolTimeout, psycopg.Error, SQLAlchemyError) as exc:
            raise KnowledgeBaseError(
                f"Could not open the knowledge bases in PostgreSQL at {self.location}: {_reason(exc)}."
            ) from exc

    @contextmanager
    def locked(self, kb_id: str) -> Iterator[psycopg.Connection[Any]]:
        """A connection (autocommit; transactions are the caller's) holding the advisory lock of
        knowledge base ``kb_id`` until the block ends: one indexer or deleter at a time, over every
        instance. A killed holder's lock goes with its connection."""
        key = f"parley-kb:{kb_id}"
        with self.pool.connection() as conn:
            conn.autocommit = True
            conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (key,))
            try:
                yield conn
            finally:
                conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (key,))
                conn.autocommit = False

    @_said
    def names(self) -> list[str]:
        """Names of the existing knowledge bases, sorted."""
        with self.pool.connection() as conn:
            rows = conn.execute("SELECT name FROM parley_knowledge_bases").fetchall()
        return sorted((r[0] for r in rows), key=str.casefold)

    @_said
    def create(self, name: str) -> PostgresKnowledgeBase:
        """Create an empty knowledge base called ``name`` (trimmed).

        Raises:
            KnowledgeBaseError: the name is blank or taken.
        """
        name = self._new_name(name)
        kb_id = knowledge_base_id(name)
        with self.pool.connection() as conn, conn.transaction():
            made = conn.execute(
                "INSERT INTO parley_knowledge_bases (id, name) VALUES (%s, %s) ON CONFLICT DO NOTHING RETURNING id",
                (kb_id, name),
            ).fetchone()
        if made is None:
            raise KnowledgeBaseError(f"A knowledge base called {name!r} already exists.")
        return PostgresKnowledgeBase(self, kb_id, name)

    @_said
    def open(self, name: str) -> PostgresKnowledgeBase:
        """Return the knowledge base ``name`` as it is in the database.

        Raises:
            KnowledgeBaseError: there is no such knowledge base.
        """
        with self.pool.connection() as conn:
            row = conn.execute("SELECT id FROM parley_knowledge_bases WHERE name = %s", (name,)).fetchone()
        if row is None:
            raise KnowledgeBaseError(f"There is no knowledge base called {name!r}.")
        return PostgresKnowledgeBase(self, row[0], name)

    @_said
    def delete(self, name: str) -> None:
        """Delete knowledge base ``name``: its row, its files' rows and every chunk of it, once no
        one is indexing it (a missing name is ignored)."""
        try:
            kb = self.open(name)
        except KnowledgeBaseError:
            return
        with self.locked(kb.id) as conn, conn.transaction():
            conn.execute(
                f"DELETE FROM {CHUNKS} WHERE metadata_->>'kb' = %s OR metadata_->>'kb' LIKE %s",
                (kb.id, f"pending:{kb.id}:%"),
            )
            conn.execute("DELETE FROM parley_knowledge_bases WHERE id = %s", (kb.id,))
