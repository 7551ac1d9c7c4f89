"""``python -m utils.copy_knowledge_bases --from knowledge_bases --to postgresql://...``
(``make copy-knowledge-bases``): copy every knowledge base from one store to another without
embedding or uploading anything again: each file's chunks with their embeddings, its manifest
entry and, where the source kept it, its original bytes. Then check that each arrived whole.

Either side is anything KNOWLEDGE_BASE_URL accepts (a folder, or PostgreSQL with pgvector). A
knowledge base that already exists at the destination gets the source's files, in place of the
same names.
"""

from __future__ import annotations

import sys
from pathlib import Path

from llama_index.core.base.embeddings.base import BaseEmbedding

from model.copy_conversations import copy_command
from utils.knowledge_bases import KnowledgeBaseError, KnowledgeBaseStore, open_knowledge_bases


class _NoEmbedding(BaseEmbedding):
    """The copy's embedding model: it embeds nothing (chunks keep their embeddings), so the real
    one is not loaded; any use of it is a bug, said as a KnowledgeBaseError."""

    def _get_text_embedding(self, text: str) -> list[float]:
        raise KnowledgeBaseError("Copying knowledge bases embedded a text; nothing was copied past this point.")

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._get_text_embedding(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_text_embedding(query)


def _open(location: str) -> KnowledgeBaseStore:
    return open_knowledge_bases(location, Path(location), location, _NoEmbedding)


def copy_knowledge_bases(source: str, destination: str) -> tuple[int, int, int]:
    """Copy every knowledge base from ``source`` to ``destination`` and verify the counts.

    Returns:
        ``(knowledge bases, files, chunks)`` copied.

    Raises:
        KnowledgeBaseError: a store cannot be opened, read or written, or a copied knowledge base's
            files or chunk counts differ at the destination (the sentence names the first one).
    """
    src, dst = _open(source), _open(destination)
    bases = files = chunks = 0
    for name in src.names():
        kb = src.open(name)
        target = dst.open(name) if name in dst.names() else dst.create(name)
        copied = list(kb.indexed_files())
        for file in copied:
            if len(file.nodes) != file.entry.chunks:
                raise KnowledgeBaseError(
                    f"{name!r}: {file.name!r} lists {file.entry.chunks} chunk(s) "
                    f"but the source holds {len(file.nodes)}."
                )
        target.import_files(copied)
        arrived = target.files
        for file in copied:
            if arrived.get(file.name) != file.entry:
                raise KnowledgeBaseError(f"{name!r}: {file.name!r} did not arrive whole.")
        bases, files, chunks = bases + 1, files + len(copied), chunks + sum(len(f.nodes) for f in copied)
    return bases, files, chunks


def main(argv: list[str] | None = None) -> int:
    """The command line (``--from`` and ``--to``: a folder or a PostgreSQL URL each); returns the
    exit code (1 on a failure, with its sentence on stderr)."""

    def copy(source: str, destination: str) -> str:
        bases, files, chunks = copy_knowledge_bases(source, destination)
        return f"Copied {bases} knowledge base(s): {files} file(s), {chunks} chunk(s); every count verified."

    return copy_command(argv, "python -m utils.copy_knowledge_bases", __doc__, copy, (KnowledgeBaseError,))


if __name__ == "__main__":
    sys.exit(main())
