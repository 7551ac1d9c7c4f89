"""Images and voice benchmark (`make bench`, or ``python -m bench.media`` alone): the offline models
on this machine's CPU, each figure a median of ``RUNS`` after one warm-up.

- speech to text: Whisper tiny.en (faster-whisper, int8) on ~20 s of Piper's speech, as a real-time
  factor (seconds of work per second of audio; target at most 0.5);
- text to speech: Piper's "joe" voice (a process per reply, the voice loaded each time), seconds per
  100 characters of a 400-character reply;
- OCR: Tesseract on an A4 page image (1240 × 1754, 150 dpi, 40 lines of text), seconds per page;
- what one image adds to a turn's time to first token on the local model (cleaning, storing and
  OCR before the request, and the longer prompt), against the same question with no image.
"""

from __future__ import annotations

import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

APP_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(APP_DIR))

from controller.chat import Chat  # noqa: E402
from controller.engines import PlainEngine  # noqa: E402
from model.json_store import JsonFileStore  # noqa: E402
from utils.images import clean_image  # noqa: E402
from utils.ocr import image_text  # noqa: E402
from utils.providers import LLMConfig  # noqa: E402
from utils.speech import piper_wav, synthesize, transcribe, wav_seconds  # noqa: E402

RUNS = 5
SPEECH = (
    "Parley keeps your conversations on your own machine. It answers from a small model that ships "
    "inside a package, and it reads documents, searches the web and runs code in a sandbox. "
)
REPLY = (SPEECH * 3)[:400]


def a4_page() -> bytes:
    """An A4 page at 150 dpi with 40 lines of text, as PNG."""
    page = Image.new("RGB", (1240, 1754), "white")
    draw = ImageDraw.Draw(page)
    font = ImageFont.load_default(size=24)
    for line in range(40):
        draw.text(
            (100, 100 + line * 38),
            f"Line {line + 1}: invoice item {line * 7 + 3}, quantity {line % 9 + 1}.",
            fill="black",
            font=font,
        )
    out = io.BytesIO()
    page.save(out, "PNG")
    return out.getvalue()


def _median_seconds(work, runs: int = RUNS) -> float:
    work()  # warm-up
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _first_token_seconds(chat: Chat, text: str, files: list[tuple[str, bytes]]) -> float:
    started = time.perf_counter()
    turn = chat.send(text, files=files)
    next(iter(turn))
    elapsed = time.perf_counter() - started
    turn.close()
    return elapsed


def bench_image_ttft(base_url: str, context_window: int) -> dict:
    """Time to first token of a question with and without an image (OCR'd for the local model)."""
    config = LLMConfig("local", "smollm2", base_url=base_url, max_tokens=16, context_window=context_window)
    image = a4_page()
    with tempfile.TemporaryDirectory() as folder:
        store = JsonFileStore(Path(folder) / "conversations.json")
        without, with_image, preparing = [], [], []
        for run in range(RUNS + 1):
            plain = Chat(PlainEngine.from_defaults(config), store, auto_title=True)
            pictured = Chat(PlainEngine.from_defaults(config), store, auto_title=True)
            a = _first_token_seconds(plain, "What does the page say?", [])
            b = _first_token_seconds(pictured, "What does the page say?", [("page.png", image)])
            started = time.perf_counter()
            image_text(clean_image("page.png", image).data)
            c = time.perf_counter() - started
            if run:  # the first pair warms the server's prompt cache and Tesseract up
                without.append(a)
                with_image.append(b)
                preparing.append(c)
    return {
        "without_ms": statistics.median(without) * 1000,
        "with_ms": statistics.median(with_image) * 1000,
        "added_ms": (statistics.median(with_image) - statistics.median(without)) * 1000,
        "clean_and_ocr_ms": statistics.median(preparing) * 1000,
    }


def run(base_url: str | None = None, context_window: int = 4096) -> dict:
    """Every figure of the module docstring; the image's time to first token only with ``base_url``
    (the local model's server)."""
    speech = piper_wav(SPEECH * 2)
    audio = wav_seconds(speech)
    stt = _median_seconds(lambda: transcribe(speech, "speech.wav"))
    tts = _median_seconds(lambda: synthesize(REPLY))
    page = clean_image("page.png", a4_page()).data
    ocr = _median_seconds(lambda: image_text(page))
    result = {
        "audio_seconds": audio,
        "stt_seconds": stt,
        "stt_rtf": stt / audio,
        "tts_seconds_per_100_chars": tts / (len(REPLY) / 100),
        "ocr_seconds_per_page": ocr,
        "runs": RUNS,
    }
    if base_url:
        result["image_ttft"] = bench_image_ttft(base_url, context_window)
    return result


def section(media: dict) -> list[str]:
    """The "Images and voice" section of bench/RESULTS.md."""
    lines = [
        "",
        "## Images and voice",
        "",
        f"The offline models on this CPU (`bench/media.py`, median of {media['runs']} after a warm-up).",
        "",
        "| figure | result | target |",
        "|---|---|---|",
        f"| speech to text: Whisper tiny.en on {media['audio_seconds']:.0f} s of Piper's speech, real-time factor | "
        f"**{media['stt_rtf']:.2f}** ({media['stt_seconds']:.1f} s) | ≤ 0.5 |",
        f'| text to speech: Piper\'s "joe" voice, a process per reply, seconds per 100 characters | '
        f"**{media['tts_seconds_per_100_chars']:.2f} s** | report |",
        f"| OCR: Tesseract on an A4 page image (1240 × 1754, 40 lines) | "
        f"**{media['ocr_seconds_per_page']:.2f} s** | report |",
    ]
    ttft = media.get("image_ttft")
    if ttft:
        lines.append(
            "| one image's cost to a turn's time to first token on the local model "
            "(clean, store, OCR, longer prompt) | "
            f"**+{ttft['added_ms']:.0f} ms** ({ttft['without_ms']:.0f} → {ttft['with_ms']:.0f} ms; "
            f"cleaning and OCR alone {ttft['clean_and_ocr_ms']:.0f} ms) | report |"
        )
    return lines


if __name__ == "__main__":
    import json

    from utils.local_server import LocalServer

    server = LocalServer.ensure(None, context_window=4096)
    try:
        figures = run(server.base_url, server.context_window)
    finally:
        server.stop()
    print(json.dumps(figures, indent=1))
    print("\n".join(section(figures)))
