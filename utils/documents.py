"""Read a file into llama-index Documents, with where each text came from, within limits.

A file's text is read in a process of its own (``utils.document_reader``; plain UTF-8 text, which
needs no parser, in this one) with an address-space
limit and a wall-clock limit, so a hostile file (a zip bomb of a .docx, a spreadsheet claiming a
million rows, a PDF whose content stream holds a million text operators) is refused with a sentence
that names it, and the app's own interpreter never waits on it. The limits (``ReadLimits``):

- the file's size: PARLEY_MAX_UPLOAD_MB (50 MB);
- what a .docx or .xlsx (a zip) unpacks to: 100 MB, summed over its members before reading;
- the text: 5,000,000 characters; a PDF: 2,000 pages;
- reading: 60 s and 1,024 MB of address space.

Types: .txt, .md, .pdf, .docx, .csv and .xlsx (see ``utils.document_reader``).
"""

from __future__ import annotations

import functools
import io
import json
import resource
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from llama_index.core import Document

from utils import document_reader

#: File types a knowledge base accepts (lower-case suffixes).
SUPPORTED_TYPES = (".txt", ".md", ".pdf", ".docx", ".csv", ".xlsx")
#: Types that are zip archives, whose members are sized before they are read.
ZIPPED_TYPES = (".docx", ".xlsx")
APP_DIR = Path(__file__).resolve().parent.parent


class DocumentError(ValueError):
    """A file cannot be used; ``str(error)`` names the file and says why, for the user."""


@dataclass(frozen=True)
class ReadLimits:
    """How much one file may cost to read.

    Attributes:
        max_bytes: its size, in bytes (PARLEY_MAX_UPLOAD_MB).
        max_unzipped_bytes: what a .docx or .xlsx unpacks to, in bytes.
        max_chars: characters of text.
        max_pdf_pages: pages of a PDF.
        time_limit: seconds reading may take.
        memory_mb: address space of the reading process, in MB.
    """

    max_bytes: int = 50 * 2**20
    max_unzipped_bytes: int = 100 * 2**20
    max_chars: int = 5_000_000
    max_pdf_pages: int = 2_000
    time_limit: float = 60.0
    memory_mb: int = 1024


@functools.cache
def default_limits() -> ReadLimits:
    """The limits with PARLEY_MAX_UPLOAD_MB from the settings (50 MB when it cannot be read)."""
    from pydantic import ValidationError

    from settings import load_settings

    try:
        return ReadLimits(max_bytes=load_settings().parley_max_upload_mb * 2**20)
    except ValidationError:
        return ReadLimits()


def check_size(name: str, data: bytes, limits: ReadLimits | None = None) -> None:
    """Refuse a file larger than ``limits.max_bytes``, or a zip that unpacks to more than
    ``limits.max_unzipped_bytes`` (its members' declared sizes, summed; nothing is unpacked).

    Raises:
        DocumentError: the file is too large, or unpacks to too much; the sentence names it.
    """
    limits = limits or default_limits()
    if len(data) > limits.max_bytes:
        raise DocumentError(f"{name}: the file is {_mb(len(data))}; the largest allowed is {_mb(limits.max_bytes)}.")
    if Path(name).suffix.lower() not in ZIPPED_TYPES:
        return
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(member.file_size for member in archive.infolist())
    except (zipfile.BadZipFile, ValueError) as exc:
        raise DocumentError(f"{name}: the file could not be read ({type(exc).__name__}: {exc}).") from exc
    if unpacked > limits.max_unzipped_bytes:
        raise DocumentError(
            f"{name}: it unpacks to {_mb(unpacked)} from {_mb(len(data))}; the most allowed is "
            f"{_mb(limits.max_unzipped_bytes)}."
        )


def _mb(size: int) -> str:
    """A size for people: bytes below 1 KB, KB below 1 MB, else MB (one decimal)."""
    if size < 2**10:
        return f"{size:,} bytes"
    return f"{size / 2**10:,.1f} KB" if size < 2**20 else f"{size / 2**20:,.1f} MB"


#: Types read in this process: plain UTF-8 text needs no parser, so nothing in it can take more
#: than linear time or memory, and a process per file (~80 ms to start) made indexing many small
#: text files ~7 times slower.
IN_PROCESS_TYPES = frozenset({".txt", ".md"})


def _reader_limits(memory_mb: int) -> None:
    """preexec_fn of the reading process: its address space, and no core file."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_mb * 2**20, memory_mb * 2**20))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _read_parts(name: str, suffix: str, data: bytes, limits: ReadLimits) -> list[tuple[str, dict[str, object]]]:
    """The parts ``utils.document_reader`` reads from ``data``, in a process of its own (plain text,
    ``IN_PROCESS_TYPES``, in this one).

    Raises:
        DocumentError: it refused the file, or ran out of time or memory; the sentence names the file.
    """
    if suffix in IN_PROCESS_TYPES:  # a UTF-8 decode of bytes already within the size limit: linear, no parser
        try:
            return document_reader.read(suffix, data, limits.max_chars, limits.max_pdf_pages)
        except document_reader.ReadError as exc:
            raise DocumentError(f"{name}: {exc}") from exc
    command = [sys.executable, "-m", "utils.document_reader", suffix, str(limits.max_chars), str(limits.max_pdf_pages)]
    process = subprocess.Popen(
        command,
        cwd=APP_DIR,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        preexec_fn=functools.partial(_reader_limits, limits.memory_mb),
    )
    try:
        out, _ = process.communicate(data, timeout=limits.time_limit)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise DocumentError(
            f"{name}: reading it took longer than {limits.time_limit:g} s, so it was stopped "
            "(a file built to be slow to read, or simply too large)."
        ) from None
    try:
        answer = json.loads(out)
    except ValueError:
        answer = {"error": f"reading it needed more than {limits.memory_mb:,} MB of memory, or crashed"}
    if "error" in answer:
        raise DocumentError(f"{name}: {answer['error']}")
    return [(str(text), dict(where)) for text, where in answer["parts"]]


def load_document(name: str, data: bytes, limits: ReadLimits | None = None) -> list[Document]:
    """The Documents of file ``name`` holding ``data``, each with ``file_name`` metadata.

    Args:
        name: the file name; its suffix picks the reader.
        data: the file's bytes.
        limits: what reading may cost; ``default_limits()`` when None.

    Raises:
        DocumentError: unsupported type, empty file, over a limit, no text in it, or a file that
            cannot be read; the sentence names the file.
    """
    limits = limits or default_limits()
    suffix = Path(name).suffix.lower()
    if suffix not in SUPPORTED_TYPES:
        raise DocumentError(
            f"{name}: files of type {suffix or '(none)'} are not supported; use {', '.join(SUPPORTED_TYPES)}."
        )
    if not data.strip():
        raise DocumentError(f"{name}: the file is empty.")
    check_size(name, data, limits)
    documents = [
        Document(
            text=text,
            metadata={"file_name": name, **where},
            excluded_embed_metadata_keys=list(where),
            excluded_llm_metadata_keys=list(where),
        )
        for text, where in _read_parts(name, suffix, data, limits)
        if text.strip()
    ]
    if not documents:
        raise DocumentError(f"{name}: no text was found in the file.")
    return documents


def read_text(name: str, data: bytes, limits: ReadLimits | None = None) -> str:
    """The whole text of file ``name`` holding ``data``, read as ``load_document`` reads it.

    Pages (.pdf) and rows (.csv, .xlsx) are joined with blank lines. Used for a file dropped into
    the chat box, whose text goes into that turn's context.

    Raises:
        DocumentError: as ``load_document``.
    """
    return "\n\n".join(document.text for document in load_document(name, data, limits))
