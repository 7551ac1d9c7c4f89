"""An image's text, for models that cannot see images: Tesseract OCR through pytesseract.

Tesseract (Debian's ``tesseract-ocr`` and ``tesseract-ocr-eng``, installed by ``make run`` and
``make test``) runs as a process of its own for each image, with a time limit (``OCR_SECONDS``); the
image has already been checked and scaled by ``utils.images``, so what it reads is bounded. It runs
with one OpenMP thread (``OMP_THREAD_LIMIT=1``): on 2 cores its threads slowed an A4 page from
1.2 s to 3.7 s (measured, bench/media.py).
"""

from __future__ import annotations

import functools
import io
import os
import shutil

#: Longest an image's OCR may take, in seconds (an A4 page at 2048 px takes about 2 s here).
OCR_SECONDS = 30.0
#: Tesseract's language: English, from ``tesseract-ocr-eng``.
OCR_LANGUAGE = "eng"


class OcrUnavailable(RuntimeError):
    """Tesseract is not installed here; ``str(error)`` says so and how to install it."""


class OcrFailed(RuntimeError):
    """Tesseract could not read an image (it failed or ran out of time); ``str(error)`` says which."""


@functools.cache
def ocr_available() -> bool:
    """True when the ``tesseract`` program is on PATH (checked once per process)."""
    return shutil.which("tesseract") is not None


def image_text(data: bytes, name: str = "the image") -> str:
    """The text Tesseract reads in an image, white space tidied.

    Args:
        data: an image Pillow can open (``utils.images.CleanImage.data``).
        name: the file's name, for the sentences.

    Returns:
        the text, lines kept, blank runs collapsed; "" when there is none.

    Raises:
        OcrUnavailable: Tesseract is not installed.
        OcrFailed: it failed or ran longer than ``OCR_SECONDS``.
    """
    if not ocr_available():
        raise OcrUnavailable(
            "Tesseract OCR is not installed here (`sudo apt-get install tesseract-ocr tesseract-ocr-eng`; "
            "`make run` tries to install it), so the image's text cannot be read for this model."
        )
    import pytesseract
    from PIL import Image

    # pytesseract starts Tesseract with the environment its module holds: this process's, plus the
    # thread limit (set there only, not in this process, whose other children use OpenMP too).
    pytesseract.pytesseract.environ = {**os.environ, "OMP_THREAD_LIMIT": "1"}

    try:
        with Image.open(io.BytesIO(data)) as image:
            text: str = pytesseract.image_to_string(image, lang=OCR_LANGUAGE, timeout=OCR_SECONDS)
    except RuntimeError as exc:  # pytesseract's timeout
        raise OcrFailed(f"Reading the text of {name} took longer than {OCR_SECONDS:g} s.") from exc
    except (pytesseract.TesseractError, OSError) as exc:
        raise OcrFailed(f"Tesseract could not read {name}.") from exc
    lines = [line.strip() for line in text.splitlines()]
    tidy: list[str] = []
    for line in lines:
        if line or (tidy and tidy[-1]):
            tidy.append(line)
    return "\n".join(tidy).strip()
