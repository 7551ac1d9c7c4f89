"""The text of one file, read in a process of its own: ``python -m utils.document_reader <suffix>
<max characters> <max PDF pages>`` reads the file's bytes from stdin and writes JSON to stdout:
``{"parts": [[text, {"page": 3}], ...]}``, or ``{"error": "<sentence>"}``.

``utils.documents`` starts it with an address-space limit and waits at most its time limit, so a
hostile file (a PDF whose one content stream holds a million text operators, a spreadsheet that
claims a million rows) costs at most that time and memory, and never holds the app's interpreter.

Types: .txt and .md (UTF-8 text), .pdf (pypdf; one part per page, metadata ``page``), .docx
(docx2txt), .csv and .xlsx (openpyxl): in spreadsheets each row becomes one part of
``header: value`` pairs (metadata ``row``, the spreadsheet's row number counting the header as
row 1, and ``sheet`` for .xlsx).
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterable, Sequence

Part = tuple[str, dict[str, object]]


class ReadError(ValueError):
    """The file cannot be read within the limits; ``str(error)`` says why (without the file's name)."""


class _Budget:
    """Counts the characters read so far against ``limit``."""

    def __init__(self, limit: int) -> None:
        self.limit, self.used = limit, 0

    def take(self, text: str) -> str:
        """``text``, counted.

        Raises:
            ReadError: the file's text is longer than the limit.
        """
        self.used += len(text)
        if self.used > self.limit:
            raise ReadError(f"it holds more than {self.limit:,} characters of text, the most a file may have")
        return text


def read_text(data: bytes, budget: _Budget) -> list[Part]:
    """A UTF-8 text file (.txt, .md) as one part.

    Raises:
        ReadError: not UTF-8, or too long.
    """
    try:
        return [(budget.take(data.decode("utf-8-sig")), {})]
    except UnicodeDecodeError as exc:
        raise ReadError("the file is not UTF-8 text; save it as UTF-8 and add it again.") from exc


def read_pdf(data: bytes, budget: _Budget, max_pages: int) -> list[Part]:
    """One part per page of a PDF.

    Raises:
        ReadError: more than ``max_pages`` pages, or too much text.
    """
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data), strict=False)
    if len(reader.pages) > max_pages:
        raise ReadError(f"it has {len(reader.pages):,} pages; the most a PDF may have is {max_pages:,}")
    return [(budget.take(page.extract_text() or ""), {"page": n}) for n, page in enumerate(reader.pages, start=1)]


def read_docx(data: bytes, budget: _Budget) -> list[Part]:
    """The text of a Word document as one part.

    Raises:
        ReadError: too much text.
    """
    import docx2txt

    return [(budget.take(docx2txt.process(io.BytesIO(data))), {})]


def rows_as_parts(
    header: Sequence[object], rows: Iterable[Sequence[object]], start: int, extra: dict[str, object], budget: _Budget
) -> list[Part]:
    """Each spreadsheet row as ``"header: value; ..."`` with its row number (from ``start``) and ``extra``."""
    names = [str(h).strip() if h is not None and str(h).strip() else f"column {i + 1}" for i, h in enumerate(header)]
    out: list[Part] = []
    for number, row in enumerate(rows, start=start):
        pairs = [
            f"{names[i] if i < len(names) else f'column {i + 1}'}: {value}"
            for i, value in enumerate(row)
            if value is not None and str(value).strip()
        ]
        if pairs:
            out.append((budget.take("; ".join(pairs)), {**extra, "row": number}))
    return out


def read_csv(data: bytes, budget: _Budget) -> list[Part]:
    """One part per row of a CSV file (UTF-8)."""
    text = read_text(data, _Budget(budget.limit))[0][0]
    rows = list(csv.reader(io.StringIO(text)))
    return rows_as_parts(rows[0], rows[1:], 2, {}, budget) if rows else []


def read_xlsx(data: bytes, budget: _Budget) -> list[Part]:
    """One part per row of every sheet of an Excel workbook.

    The size a sheet declares (``<dimension ref="A1:XFD1048576"/>``) is not trusted: openpyxl would
    walk every cell of it; the rows that are really in the file are read instead.
    """
    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    out: list[Part] = []
    for sheet in book.worksheets:
        sheet.reset_dimensions()
        rows = iter(sheet.iter_rows(values_only=True))
        header = next(rows, None)
        if header is not None:
            out += rows_as_parts(list(header), rows, 2, {"sheet": sheet.title}, budget)
    return out


def read(suffix: str, data: bytes, max_chars: int, max_pages: int) -> list[Part]:
    """The parts of a file of type ``suffix`` holding ``data``.

    Raises:
        ReadError: the file breaks a limit or is not what its type says.
        Exception: a reader's own error (a damaged file).
    """
    budget = _Budget(max_chars)
    if suffix == ".pdf":
        return read_pdf(data, budget, max_pages)
    readers = {".txt": read_text, ".md": read_text, ".docx": read_docx, ".csv": read_csv, ".xlsx": read_xlsx}
    return readers[suffix](data, budget)


def main() -> int:
    """Read stdin as arguments say, write the JSON answer to stdout; 0 on success, 2 on a refusal."""
    suffix, max_chars, max_pages = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    data = sys.stdin.buffer.read()
    try:
        answer: dict[str, object] = {"parts": read(suffix, data, max_chars, max_pages)}
        code = 0
    except ReadError as exc:
        answer, code = {"error": str(exc)}, 2
    except MemoryError:
        answer, code = {"error": "reading it needs more memory than a file may take"}, 2
    except Exception as exc:  # every reader's own errors: the file is damaged or not what it says
        answer, code = {"error": f"the file could not be read ({type(exc).__name__}: {exc})."}, 2
    sys.stdout.write(json.dumps(answer, ensure_ascii=False))
    return code


if __name__ == "__main__":
    sys.exit(main())
