"""Read a file into llama-index Documents, with where each text came from.

Types: .txt and .md (UTF-8 text), .pdf (pypdf; one Document per page, metadata ``page``),
.docx (docx2txt), .csv and .xlsx (openpyxl): in spreadsheets each row becomes one text of
``header: value`` pairs, one text per row (metadata ``row``, the spreadsheet's
row number counting the header as row 1, and ``sheet`` for .xlsx).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from pathlib import Path

from llama_index.core import Document

#: File types a knowledge base accepts (lower-case suffixes).
SUPPORTED_TYPES = (".txt", ".md", ".pdf", ".docx", ".csv", ".xlsx")


class DocumentError(ValueError):
    """A file cannot be indexed; ``str(error)`` names the file and says why, for the user."""


def load_document(name: str, data: bytes) -> list[Document]:
    """Return the Documents of file ``name`` holding ``data``, each with ``file_name`` metadata.

    Args:
        name: the file name; its suffix picks the reader.
        data: the file's bytes.

    Raises:
        DocumentError: unsupported type, empty file, no text in it, or a file that cannot be read.
    """
    suffix = Path(name).suffix.lower()
    if suffix not in SUPPORTED_TYPES:
        raise DocumentError(
            f"{name}: files of type {suffix or '(none)'} are not supported; use {', '.join(SUPPORTED_TYPES)}."
        )
    if not data.strip():
        raise DocumentError(f"{name}: the file is empty.")
    try:
        parts = _READERS[suffix](data)
    except DocumentError as exc:  # a reader's own sentence, which does not know the file's name
        raise DocumentError(f"{name}: {exc}") from exc
    except Exception as exc:  # every reader's own errors: the file is damaged or not what it says
        raise DocumentError(f"{name}: the file could not be read ({type(exc).__name__}: {exc}).") from exc
    documents = [
        Document(
            text=text,
            metadata={"file_name": name, **where},
            excluded_embed_metadata_keys=list(where),
            excluded_llm_metadata_keys=list(where),
        )
        for text, where in parts
        if text.strip()
    ]
    if not documents:
        raise DocumentError(f"{name}: no text was found in the file.")
    return documents


def _text(data: bytes) -> list[tuple[str, dict[str, object]]]:
    try:
        return [(data.decode("utf-8-sig"), {})]
    except UnicodeDecodeError as exc:
        raise DocumentError("the file is not UTF-8 text; save it as UTF-8 and add it again.") from exc


def _pdf(data: bytes) -> list[tuple[str, dict[str, object]]]:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data), strict=False)
    return [(page.extract_text() or "", {"page": number}) for number, page in enumerate(reader.pages, start=1)]


def _docx(data: bytes) -> list[tuple[str, dict[str, object]]]:
    import docx2txt

    return [(docx2txt.process(io.BytesIO(data)), {})]


def _rows(
    header: Sequence[object], rows: Iterable[Sequence[object]], start: int, extra: dict[str, object]
) -> list[tuple[str, dict[str, object]]]:
    """Each spreadsheet row as ``"header: value; ..."`` with its row number (from ``start``) and ``extra``."""
    names = [str(h).strip() if h is not None and str(h).strip() else f"column {i + 1}" for i, h in enumerate(header)]
    out = []
    for number, row in enumerate(rows, start=start):
        pairs = [
            f"{names[i] if i < len(names) else f'column {i + 1}'}: {value}"
            for i, value in enumerate(row)
            if value is not None and str(value).strip()
        ]
        if pairs:
            out.append(("; ".join(pairs), {**extra, "row": number}))
    return out


def _csv(data: bytes) -> list[tuple[str, dict[str, object]]]:
    text = _text(data)[0][0]
    rows = list(csv.reader(io.StringIO(text)))
    return _rows(rows[0], rows[1:], start=2, extra={}) if rows else []


def _xlsx(data: bytes) -> list[tuple[str, dict[str, object]]]:
    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    out: list[tuple[str, dict[str, object]]] = []
    for sheet in book.worksheets:
        rows = list(sheet.iter_rows(values_only=True))
        if rows:
            out += _rows(list(rows[0]), rows[1:], start=2, extra={"sheet": sheet.title})
    return out


_READERS = {".txt": _text, ".md": _text, ".pdf": _pdf, ".docx": _docx, ".csv": _csv, ".xlsx": _xlsx}


def read_text(name: str, data: bytes) -> str:
    """Return the whole text of file ``name`` holding ``data``, read as ``load_document`` reads it.

    Pages (.pdf) and rows (.csv, .xlsx) are joined with blank lines. Used for a file dropped
    into the chat box, whose text goes into that turn's context.

    Raises:
        DocumentError: unsupported type, empty or unreadable file, or no text; names the file.
    """
    return "\n\n".join(document.text for document in load_document(name, data))
