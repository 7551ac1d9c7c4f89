"""Each attack found on the calculator and on file reading, as a test: the hostile input is refused
with a sentence (naming the file), within a bounded time, and never holds the app's interpreter."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from controller.calculator import MAX_RESULT_DIGITS
from controller.tools import ToolFailure, calculate
from tests.hostile_files import docx_bomb, pdf_text_flood, xlsx_claiming_every_cell
from tests.kb_files import FILLER, pdf, txt
from utils.documents import DocumentError, ReadLimits, load_document, read_text

#: A generous deadline for "at once" (the real figures are a few ms; these machines are shared).
AT_ONCE_S = 5.0


def longest_stall(work: Callable[[], object]) -> tuple[float, BaseException | None]:
    """Run ``work`` in a thread while this thread ticks every 10 ms: the longest gap between two
    ticks (a measure of how long ``work`` held the interpreter), and what ``work`` raised."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # handed to the caller
            raised.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    longest, last = 0.0, time.monotonic()
    while thread.is_alive():
        time.sleep(0.01)
        now = time.monotonic()
        longest, last = max(longest, now - last), now
    return longest, raised[0] if raised else None


# ----- the calculator ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "expression",
    ["4000000**4000000", "4000000**4000000*4000000**4000000 > 1", "10**4000000", "2**3**4**5", "1 << 10**9"],
)
def test_a_number_too_large_to_compute_is_refused_at_once_without_holding_the_app(expression):
    started = time.monotonic()
    stall, raised = longest_stall(lambda: calculate(expression))
    assert isinstance(raised, ToolFailure) and "digits" in str(raised)
    assert time.monotonic() - started < AT_ONCE_S and stall < 1.0


def test_ten_thousand_digits_are_given_and_one_more_is_refused():
    assert calculate(f"10**{MAX_RESULT_DIGITS} - 1") == "9" * MAX_RESULT_DIGITS  # past Python's 4,300-digit text guard
    with pytest.raises(ToolFailure, match="more than 10,000 digits"):
        calculate(f"10**{MAX_RESULT_DIGITS}")
    with pytest.raises(ToolFailure, match="digits"):
        calculate("(10**6000) * (10**6000)")


def test_the_calculator_takes_numbers_only():
    with pytest.raises(ToolFailure, match="only numbers"):
        calculate("'a' * 10**9")
    assert calculate("17/100 * 250") == "42.5" and calculate("-2**10") == "-1024"


# ----- files -------------------------------------------------------------------------------


def test_a_docx_that_unpacks_to_too_much_is_refused_before_it_is_read():
    bomb = docx_bomb(unpacked=12 * 2**20)
    assert len(bomb) < 200_000  # a small file...
    limits = ReadLimits(max_unzipped_bytes=10 * 2**20)
    started = time.monotonic()
    with pytest.raises(DocumentError, match=r"^notes\.docx: it unpacks to 12\.\d MB from \d+\.\d KB; the most"):
        load_document("notes.docx", bomb, limits)
    assert time.monotonic() - started < AT_ONCE_S


def test_an_xlsx_claiming_every_cell_of_a_sheet_is_read_by_its_real_rows():
    data = xlsx_claiming_every_cell()
    assert len(data) < 10_000
    started = time.monotonic()
    documents = load_document("stock.xlsx", data)
    assert time.monotonic() - started < 30  # it ran for minutes per sheet when the declared size was trusted
    assert [d.metadata.get("row") for d in documents] == [1_048_576]
    assert "far corner" in documents[0].text


def test_a_pdf_that_takes_too_long_is_stopped_and_named_while_the_app_stays_free():
    flood = pdf_text_flood(operators=600_000, pages=4)
    assert len(flood) < 20_000
    limits = ReadLimits(time_limit=2.0)
    started = time.monotonic()
    stall, raised = longest_stall(lambda: load_document("report.pdf", flood, limits))
    assert isinstance(raised, DocumentError) and str(raised).startswith("report.pdf: reading it took longer than 2 s")
    assert time.monotonic() - started < 2.0 + AT_ONCE_S and stall < 1.0


@pytest.mark.parametrize(
    "name, data, limits, reason",
    [
        (
            "big.txt",
            b"x" * 3000,
            ReadLimits(max_bytes=2000),
            "the file is 2.9 KB; the largest allowed is 2.0 KB",
        ),
        ("long.txt", (FILLER * 50).encode(), ReadLimits(max_chars=1000), "more than 1,000 characters of text"),
        ("pages.pdf", None, ReadLimits(max_pdf_pages=1), "it has 2 pages; the most a PDF may have is 1"),
        ("memory.csv", b"y" * (30 * 2**20), ReadLimits(memory_mb=80, max_chars=10**9), "needs more memory than"),
    ],
)
def test_each_limit_refuses_with_a_sentence_naming_the_file(name, data, limits, reason):
    with pytest.raises(DocumentError) as refused:
        read_text(name, data if data is not None else pdf(), limits)
    assert str(refused.value).startswith(f"{name}: ") and reason in str(refused.value)


def test_plain_text_is_read_in_this_process_within_the_same_limits(monkeypatch):
    """.txt and .md need no parser, so no process is started for them (one per file made indexing
    many small files ~7 times slower); the size and length limits still hold."""
    import utils.documents as documents

    def no_process(*args, **kwargs):
        raise AssertionError("a process was started for plain text")

    monkeypatch.setattr(documents.subprocess, "Popen", no_process)
    assert "Zorblax valve opens at 42 kPa" in read_text("valves.txt", txt())
    assert read_text("notes.md", "# Title\n\nBody é".encode()) == "# Title\n\nBody é"
    with pytest.raises(DocumentError, match=r"^long\.md: it holds more than 1,000 characters"):
        read_text("long.md", (FILLER * 50).encode(), ReadLimits(max_chars=1000))
    with pytest.raises(DocumentError, match=r"^latin\.txt: the file is not UTF-8 text"):
        read_text("latin.txt", "café".encode("latin-1"))


def test_a_good_file_still_reads_within_the_limits():
    assert "Zorblax valve opens at 42 kPa" in read_text("valves.txt", txt())
