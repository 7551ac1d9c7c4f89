"""Test documents of every supported type, each holding a made-up fact no model knows."""

from __future__ import annotations

import csv
import functools
import io

FILLER = (
    "This section describes routine maintenance of the plant. Staff check the lighting, clean the "
    "floors, and log the temperature of the storage rooms every morning. "
)

#: file name → (question, words the retrieved chunk must contain)
FACTS = {
    "valves.txt": ("At what pressure does the Zorblax valve open?", "42 kPa"),
    "garden.md": ("What colour are the flowers of the Quindle tree?", "teal"),
    "manual.pdf": ("How many blades does the Vorpex turbine have?", "seventeen"),
    "history.docx": ("Who founded the town of Brillmoor?", "Odalys Fenwick"),
    "crew.csv": ("What is the call sign of pilot Tamsin Okoro?", "RAVEN-9"),
    "inventory.xlsx": ("How many Glimmer lanterns are in warehouse C?", "318"),
}


def txt() -> bytes:
    return (FILLER * 3 + "\n\nThe Zorblax valve opens at 42 kPa, and closes again at 30 kPa.\n\n" + FILLER * 3).encode()


def md() -> bytes:
    return (
        f"# Garden notes\n\n{FILLER * 2}\n\n## Trees\n\nThe Quindle tree has teal flowers in spring.\n\n{FILLER * 2}"
    ).encode()


def pdf() -> bytes:
    from fpdf import FPDF

    doc = FPDF()
    doc.set_font("Helvetica", size=11)
    doc.add_page()
    doc.multi_cell(0, 6, FILLER * 4)
    doc.add_page()
    doc.multi_cell(0, 6, "Turbines. The Vorpex turbine has seventeen blades made of ceramic. " + FILLER)
    return bytes(doc.output())


def docx() -> bytes:
    from docx import Document

    doc = Document()
    doc.add_paragraph(FILLER * 2)
    doc.add_paragraph("The town of Brillmoor was founded by Odalys Fenwick in 1702.")
    doc.add_paragraph(FILLER * 2)
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


def csv_bytes() -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["pilot", "call sign", "aircraft"])
    for row in [
        ("Ana Silva", "FALCON-2", "Cessna"),
        ("Tamsin Okoro", "RAVEN-9", "Piper"),
        ("Li Wei", "OWL-4", "Beech"),
    ]:
        writer.writerow(row)
    return out.getvalue().encode()


def xlsx() -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "Stock"
    sheet.append(["item", "warehouse", "count"])
    for row in [("Copper pipes", "A", 40), ("Glimmer lanterns", "C", 318), ("Rope", "B", 12)]:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


MAKERS = {
    "valves.txt": txt,
    "garden.md": md,
    "manual.pdf": pdf,
    "history.docx": docx,
    "crew.csv": csv_bytes,
    "inventory.xlsx": xlsx,
}


@functools.lru_cache(maxsize=1)
def _made() -> tuple[tuple[str, bytes], ...]:
    return tuple((name, make()) for name, make in MAKERS.items())


def all_files() -> list[tuple[str, bytes]]:
    """Every test document as (file name, bytes); made once, since pdf, docx and xlsx carry a timestamp."""
    return list(_made())
