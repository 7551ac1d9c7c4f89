"""Files built to hurt a reader, in the shapes that were found to: each is small, and each asks a
naive reader for gigabytes of memory or minutes of CPU.

- ``docx_bomb``: a .docx whose document.xml unpacks to ``unpacked`` bytes (a 255 KB file unpacked to
  268 M characters and 873 MB of memory);
- ``xlsx_claiming_every_cell``: a 5 KB .xlsx whose sheet declares ``A1:XFD1048576`` and holds one
  cell at its far corner (openpyxl walked every declared cell, for minutes per sheet);
- ``pdf_text_flood``: a PDF whose one content stream holds ``operators`` ``(A) Tj`` text operators,
  shared by ``pages`` pages (an 11 KB file took 31 s, and 107 s on four pages).
"""

from __future__ import annotations

import io
import zipfile
import zlib

from tests.kb_files import docx


def docx_bomb(unpacked: int) -> bytes:
    """A valid .docx whose document.xml is about ``unpacked`` bytes of one repeated paragraph."""
    paragraph = b"<w:p><w:r><w:t>" + b"A" * 1000 + b"</w:t></w:r></w:p>"
    body = paragraph * max(1, unpacked // len(paragraph))
    head = (
        b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        b'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>'
    )
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(docx())) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            data = (
                head + body + b"</w:body></w:document>" if item.filename == "word/document.xml" else source.read(item)
            )
            target.writestr(item.filename, data, compresslevel=9)
    return out.getvalue()


def xlsx_claiming_every_cell() -> bytes:
    """An .xlsx with a header row and one value in the last cell a sheet can have (XFD1048576)."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["item", "count"])
    sheet.cell(row=1_048_576, column=16_384, value="far corner")
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def pdf_text_flood(operators: int, pages: int = 1) -> bytes:
    """A PDF of ``pages`` pages sharing one compressed content stream of ``operators`` ``(A) Tj``."""
    content = zlib.compress(b"BT /F1 12 Tf 10 700 Td " + b"(A) Tj " * operators + b"ET", 9)
    kids = " ".join(f"{4 + i} 0 R" for i in range(pages))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode(),
        b"<< /Length " + str(len(content)).encode() + b" /Filter /FlateDecode >>\nstream\n" + content + b"\nendstream",
    ]
    font = 4 + pages
    resources = f"/Resources << /Font << /F1 {font} 0 R >> >>"
    page = f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 3 0 R {resources} >>"
    objects += [page.encode()] * pages
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    out.write(b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets))
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()
