"""Images and voice without a browser: images checked and cleaned, OCR, the stored form, charts from
the sandbox, speech round trips, and what reaches a model (a vision model's ``image_url`` part, the
local model's OCR text) through a recording proxy."""

from __future__ import annotations

import base64
import io
import json
import math
import struct
import wave
import zipfile
from dataclasses import replace

import pytest
from PIL import Image, ImageDraw, ImageFont

from controller.chat import Chat
from controller.engines import AgentEngine, PlainEngine
from controller.errors import ChatError
from controller.speech import read_aloud, transcriber_for, voice_for
from controller.tools import ToolBox, image_keeper
from model.attachments import Blob, BlobCache, MemoryAttachments, referenced
from model.message import Attachment, Message
from model.stores import open_store
from tests.fault_server import RecordingProxy, _LoopbackServer
from tests.scripted_server import Call, Say, ScriptedServer
from tests.web_servers import QuietHandler
from utils.image_generation import ImageEndpoint
from utils.images import MAX_SIDE_PIXELS, ImageError, clean_image
from utils.ocr import image_text
from utils.providers import LLMConfig, sees_images
from utils.sandbox import isolation, run_python
from utils.speech import (
    SpeechError,
    SpeechProvider,
    audio_seconds,
    espeak_wav,
    piper_wav,
    speech_text,
    transcribe,
)

INVOICE = "INV-58204-HT"
#: A 64 × 64 red PNG, what the loopback images server draws.
RED_SQUARE = io.BytesIO()
Image.new("RGB", (64, 64), "red").save(RED_SQUARE, "PNG")
SENTENCE = "The quick brown fox jumps over the lazy dog near the river bank."


class _PostServer(_LoopbackServer):
    """A loopback server answering every POST with ``answer(path, body)``: (status, content type, body)."""

    def answer(self, path: str, raw: bytes) -> tuple[int, str, bytes]:
        raise NotImplementedError

    def _handler(self):
        server = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                status, kind, body = server.answer(
                    self.path, self.rfile.read(int(self.headers.get("Content-Length", 0)))
                )
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


class ImagesServer(_PostServer):
    """OpenAI's images API on 127.0.0.1 (``POST /v1/images/generations``): answers every request with
    ``image`` as ``b64_json`` (a red square by default) and keeps each request body in ``bodies``."""

    def __init__(self, image: bytes = b"") -> None:
        self.image = image or RED_SQUARE.getvalue()
        self._serve()

    def answer(self, path: str, raw: bytes) -> tuple[int, str, bytes]:
        self.bodies.append(json.loads(raw))
        body = json.dumps({"created": 0, "data": [{"b64_json": base64.b64encode(self.image).decode()}]})
        return 200, "application/json", body.encode()


def invoice_png(number: str = INVOICE) -> bytes:
    """A white A5-ish page with an invoice number in large black type, as a PNG."""
    image = Image.new("RGB", (1200, 500), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=64)
    draw.text((60, 80), "INVOICE", fill="black", font=font)
    draw.text((60, 220), f"Number: {number}", fill="black", font=font)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def tone_wav(seconds: float, rate: int = 16_000, silent: bool = False) -> bytes:
    """A mono 16-bit WAV of ``seconds``: silence, or a 440 Hz tone."""
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        frames = int(seconds * rate)
        if silent:
            writer.writeframes(b"\0\0" * frames)
        else:
            writer.writeframes(
                b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate))) for i in range(frames))
            )
    return out.getvalue()


# ----- images in ---------------------------------------------------------------------------------
def test_an_image_is_stripped_of_exif_scaled_and_a_gif_keeps_its_first_frame():
    photo = Image.new("RGB", (4000, 1000), "red")
    exif = Image.Exif()
    exif[0x010F] = "SecretCamera"  # Make
    out = io.BytesIO()
    photo.save(out, "JPEG", exif=exif.tobytes())
    assert b"SecretCamera" in out.getvalue()
    clean = clean_image("photo.jpg", out.getvalue())
    assert b"SecretCamera" not in clean.data and clean.mime == "image/jpeg"
    assert (clean.width, clean.height) == (MAX_SIDE_PIXELS, 512)
    frames = [Image.new("RGB", (50, 50), colour) for colour in ("blue", "yellow")]
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:])
    first = Image.open(io.BytesIO(clean_image("anim.gif", gif.getvalue()).data)).convert("RGB")
    assert first.getpixel((10, 10))[2] > 200 and first.getpixel((10, 10))[0] < 50  # blue, not yellow


@pytest.mark.parametrize(
    "name, data, says",
    [
        ("cut.png", invoice_png()[:400], "cut.png is broken or cut short"),
        ("huge.png", b"\x89PNG" + b"\0" * (30 * 2**20), "huge.png is 30.0 MB; images may be at most 20 MB"),
        ("archive.png", None, "archive.png is not an image Parley can read"),
    ],
)
def test_bad_images_are_refused_by_name(name, data, says):
    if data is None:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as archive:
            archive.writestr("a.txt", "not an image")
        data = out.getvalue()
    with pytest.raises(ImageError) as refused:
        clean_image(name, data)
    assert says in str(refused.value)


def test_a_decompression_bomb_is_refused_before_it_is_decoded():
    out = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(out, "PNG")  # 400 million pixels, a few kB
    with pytest.raises(ImageError, match="bomb.png has more than 40,000,000 pixels"):
        clean_image("bomb.png", out.getvalue())
    out = io.BytesIO()
    Image.new("1", (8_000, 6_000)).save(out, "PNG")  # 48 million: under Pillow's own limit, over Parley's
    with pytest.raises(ImageError, match="big.png is 8,000 × 6,000 pixels"):
        clean_image("big.png", out.getvalue())


def test_ocr_reads_the_invoice_number():
    assert INVOICE in image_text(invoice_png())


def test_an_image_attachment_is_stored_by_hash_and_read_as_text_only_when_ocr_read_it():
    image = Attachment("scan.png", "Total 12", 8, 8, sha256="a" * 64, mime="image/png", ocr=True)
    seen = replace(image, text="", ocr=False)
    spoken = Attachment("Recording", "", sha256="b" * 64, mime="audio/wav")
    message = replace(Message.user("look"), attachments=(image, seen, spoken))
    stored = message.to_dict()
    assert Message.from_dict(json.loads(json.dumps(stored))) == message
    assert "[Image scan.png, read as text]\nTotal 12" in message.model_text()
    assert message.model_text().count("[") == 1  # the image the model sees and the recording add no text
    assert referenced([stored]) == {"a" * 64, "b" * 64}
    broken = dict(stored, attachments=[dict(stored["attachments"][0], sha256="../../etc/passwd")])
    assert Message.from_dict(broken).attachments[0].sha256 == ""


def test_the_vision_table_and_its_override():
    assert sees_images(LLMConfig("openai", "gpt-4o-mini"))
    assert sees_images(LLMConfig("groq", "meta-llama/llama-4-scout-17b-16e-instruct"))
    assert not sees_images(LLMConfig("groq", "llama-3.3-70b-versatile"))
    assert not sees_images(LLMConfig("openai_like", "llava"))
    assert sees_images(LLMConfig("openai_like", "llava", vision=True))
    assert not sees_images(LLMConfig("openai", "gpt-4o", vision=False))


def test_the_file_store_keeps_images_beside_conversations_json_not_in_it(tmp_path):
    store = open_store(tmp_path / "conversations.json")
    chat = Chat(PlainEngine.from_defaults(LLMConfig("openai_like", "m", base_url="http://127.0.0.1:9/v1")), store)
    with pytest.raises(ChatError):  # no model there; the message and its image are saved first
        turn = chat.send("what does it say?", files=[("invoice.png", invoice_png())])
        chat.save_as("scan")
        list(turn)
    text = (tmp_path / "conversations.json").read_text()
    assert len(text) < 2_000 and "iVBOR" not in text  # the image's base64 is not in the file
    kept = list((tmp_path / "attachments").iterdir())
    assert len(kept) == 1 and kept[0].suffix == ".png"
    assert INVOICE in json.loads(text)["scan"][0]["attachments"][0]["text"]


def test_a_missing_tesseract_leaves_the_image_out_and_says_so(monkeypatch):
    monkeypatch.setattr("utils.ocr.ocr_available", lambda: False)
    chat = Chat(PlainEngine.from_defaults(LLMConfig("openai_like", "m", base_url="http://127.0.0.1:9/v1")))
    turn = chat.send("hello", files=[("invoice.png", invoice_png())])
    turn.close()
    assert chat.messages[0].attachments == ()
    assert "invoice.png was left out: Tesseract OCR is not installed" in chat.notices[0]


def test_a_bad_image_refuses_the_message_and_keeps_the_text():
    chat = Chat(PlainEngine.from_defaults(LLMConfig("openai_like", "m", base_url="http://127.0.0.1:9/v1")))
    with pytest.raises(ChatError) as refused:
        chat.send("my text", files=[("cut.png", invoice_png()[:300])])
    assert "cut.png is broken or cut short" in str(refused.value) and refused.value.refused_text == "my text"
    assert chat.messages == []


def test_the_local_model_is_sent_the_text_ocr_read(local_server):
    proxy = RecordingProxy(local_server.base_url).start()
    try:
        config = LLMConfig("local", "smollm2", base_url=proxy.base_url, max_tokens=8)
        chat = Chat(PlainEngine.from_defaults(config))
        list(chat.send("What is the invoice number?", files=[("invoice.png", invoice_png())]))
        sent = proxy.bodies[-1]["messages"][-1]["content"]
        assert isinstance(sent, str) and INVOICE in sent and "read as text" in sent
        assert chat.messages[0].attachments[0].ocr
    finally:
        proxy.stop()


def test_a_vision_model_is_sent_the_image_as_an_image_url_part():
    server = ScriptedServer([Say("A red square.")]).start()
    try:
        config = LLMConfig("openai_like", "vision-model", base_url=server.base_url, vision=True)
        for engine in (PlainEngine.from_defaults(config), AgentEngine.from_defaults(config)):
            chat = Chat(engine)
            list(chat.send("What is this?", files=[("square.png", invoice_png())]))
            content = server.bodies[-1]["messages"][-1]["content"]
            parts = {part["type"]: part for part in content}
            assert parts["text"]["text"] == "What is this?"
            assert parts["image_url"]["image_url"]["url"].startswith("data:image/png;base64,")
            assert not chat.messages[0].attachments[0].ocr and chat.messages[-1].content == "A red square."
    finally:
        server.stop()


# ----- images out --------------------------------------------------------------------------------
CHART = "import matplotlib.pyplot as plt\nplt.bar(['a', 'b', 'c'], [3, 5, 2])\nplt.savefig('chart.png')\nprint('drawn')"


@pytest.mark.skipif(isolation() != "full", reason="needs bubblewrap")
def test_run_python_hands_back_the_charts_it_saves():
    result = run_python(CHART)
    assert result.error is None and "drawn" in result.output
    [(name, data)] = result.files
    assert name == "chart.png" and Image.open(io.BytesIO(data)).format == "PNG"
    many = "for i in range(8):\n    open(f'{i}.png', 'wb').write(b'x')"
    assert len(run_python(many).files) == 5
    # A figure shown but not saved is saved for the user, as a notebook would show it, even when the
    # code failed after drawing it; not when the code saved an image of its own.
    shown = run_python("import matplotlib.pyplot as plt\nplt.plot([3, 5, 2])\nplt.show()")
    assert [name for name, _ in shown.files] == ["figure_1.png"]
    assert [name for name, _ in run_python(CHART + "\nplt.show()").files] == ["chart.png"]
    failed = run_python("import matplotlib.pyplot as plt\nplt.plot([1])\nraise SystemExit(2)")
    assert failed.error and [name for name, _ in failed.files] == ["figure_1.png"]


@pytest.mark.skipif(isolation() != "full", reason="needs bubblewrap")
def test_a_chart_from_run_python_is_in_the_reply_and_in_the_store(tmp_path):
    server = ScriptedServer([Call("run_python", json.dumps({"code": CHART})), Say("Here is your chart.")]).start()
    try:
        store = open_store(tmp_path / "conversations.json")
        config = LLMConfig("openai_like", "scripted", base_url=server.base_url)
        chat = Chat(AgentEngine.from_defaults(config, ToolBox()), store, auto_title=True)
        chat.set_tools(["python"])
        list(chat.send("make a bar chart of 3, 5 and 2"))
        [call] = chat.messages[-1].tool_calls
        [image] = call.images
        assert image.name == "chart.png" and image.mime == "image/png"
        blob = open_store(tmp_path / "conversations.json").attachment(image.sha256)
        assert blob is not None and Image.open(io.BytesIO(blob.data)).size[0] > 100
        assert "Images saved and shown to the user: chart.png" in call.result
    finally:
        server.stop()


def test_create_image_is_offered_only_when_configured_and_its_image_is_kept():
    assert "image" not in ToolBox().available()
    images = ImagesServer().start()
    model = ScriptedServer([Call("create_image", json.dumps({"description": "a red square"})), Say("Done.")]).start()
    try:
        toolbox = ToolBox(images=ImageEndpoint("dall-e-3", images.base_url, "key"))
        assert "image" in toolbox.available()
        chat = Chat(AgentEngine.from_defaults(LLMConfig("openai_like", "scripted", base_url=model.base_url), toolbox))
        chat.set_tools(["image"])
        list(chat.send("Draw a red square."))
        [image] = chat.messages[-1].tool_calls[0].images
        blob = chat.attachments.attachment(image.sha256)
        assert blob is not None and Image.open(io.BytesIO(blob.data)).getpixel((5, 5))[:3] == (255, 0, 0)
        assert images.bodies[-1]["prompt"] == "a red square" and images.bodies[-1]["response_format"] == "b64_json"
        images.image = b"not an image"
        model.play([Call("create_image", json.dumps({"description": "x"})), Say("Done.")])
        list(chat.send("Again."))
        assert chat.messages[-1].tool_calls[0].images == ()  # checked before it is kept: dropped
    finally:
        images.stop()
        model.stop()


def test_untrusted_tool_images_are_checked_before_they_are_kept():
    kept = image_keeper(MemoryAttachments())(
        [
            ("ok.png", invoice_png()),
            ("fake.png", b"PK\x03\x04zip"),
            ("x.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>"),
        ]
    )
    assert [a.name for a in kept] == ["ok.png", "x.svg"] and kept[1].mime == "image/svg+xml"


# ----- voice -------------------------------------------------------------------------------------
def _content_words(text: str) -> set[str]:
    stop = {"the", "a", "an", "over", "near"}
    return {w.strip(".,!?").lower() for w in text.split()} - stop


@pytest.mark.parametrize("voice, share", [(piper_wav, 0.8), (espeak_wav, 0.5)])
def test_a_spoken_sentence_comes_back_as_text(voice, share):
    """Piper's voice round-trips at least 80% of the content words; espeak-ng's robotic fallback,
    harder for Whisper tiny.en, at least half."""
    heard = transcribe(voice(SENTENCE), "speech.wav")
    expected = _content_words(SENTENCE)
    assert len(expected & _content_words(heard)) >= share * len(expected), heard


def test_silence_a_broken_file_and_a_long_recording_are_refused_by_name():
    with pytest.raises(SpeechError, match="No speech was heard in silence.wav"):
        transcribe(tone_wav(3, silent=True), "silence.wav")
    with pytest.raises(SpeechError, match="broken.wav could not be read as audio"):
        transcribe(b"RIFF\x10\x00\x00\x00WAVEjunkjunk", "broken.wav")
    with pytest.raises(SpeechError, match="long.wav lasts 11.0 minutes; recordings may be at most 10 minutes"):
        audio_seconds(tone_wav(660, rate=8000, silent=True), "long.wav")
    with pytest.raises(SpeechError, match="25 MB"):
        audio_seconds(b"\0" * (26 * 2**20), "big.wav")


def test_a_spoken_message_is_its_transcript_with_the_recording_kept():
    server = ScriptedServer([Say("Hello.")]).start()
    try:
        chat = Chat(PlainEngine.from_defaults(LLMConfig("openai_like", "m", base_url=server.base_url)))
        list(chat.send_spoken(piper_wav("What is the capital of France?")))
        message = chat.messages[0]
        assert "capital of france" in message.content.lower()
        assert message.attachments[0].is_audio and chat.attachments.attachment(message.attachments[0].sha256)
        assert server.bodies[-1]["messages"][-1]["content"] == message.content
        with pytest.raises(ChatError, match="Your recording was not sent: No speech was heard"):
            chat.send_spoken(tone_wav(2, silent=True))
        assert len(chat.messages) == 2
    finally:
        server.stop()


def test_what_is_read_aloud_has_no_markdown_code_or_citations():
    reply = (
        "## Result\n\n**Paris** is the capital [1][2]. See [the map](https://x.example/m).\n\n"
        "```python\nprint(1)\n```\n- `a` item"
    )
    spoken = speech_text(reply)
    assert spoken == "Result\nParis is the capital. See the map.\n(code block)\na item"


class AudioServer(_PostServer):
    """Groq's and OpenAI's audio APIs on 127.0.0.1, under any root: ``…/audio/transcriptions``
    answers ``{"text": transcript}`` and ``…/audio/speech`` answers ``wav``; each request's path and
    body (multipart as bytes, JSON decoded) are kept in ``bodies``. ``down`` answers 503 to all."""

    path = ""

    def __init__(self, transcript: str, wav: bytes) -> None:
        self.transcript, self.wav, self.down = transcript, wav, False
        self._serve()

    def answer(self, path: str, raw: bytes) -> tuple[int, str, bytes]:
        speech = path.endswith("/audio/speech")
        self.bodies.append({"path": path, "body": json.loads(raw) if speech else raw})
        status = 503 if self.down else 200
        if speech:
            return status, "audio/wav", self.wav
        return status, "application/json", json.dumps({"text": self.transcript}).encode()


def test_with_a_key_groq_and_openai_transcribe_and_openai_speaks_through_their_sdks():
    recording, spoken = tone_wav(1), tone_wav(2)
    server = AudioServer("What is the capital of France?", spoken).start()
    try:
        groq = LLMConfig("groq", "llama", base_url=server.base_url + "/openai/v1", api_key="gsk-test")
        openai_ = LLMConfig("openai", "gpt-4o-mini", base_url=server.base_url + "/v1", api_key="sk-test")
        assert transcribe(recording, "q.wav", transcriber_for(groq)) == "What is the capital of France?"
        assert transcribe(recording, "q.wav", transcriber_for(openai_)) == "What is the capital of France?"
        groq_call, openai_call = server.bodies
        assert groq_call["path"] == "/openai/v1/audio/transcriptions"
        assert b"whisper-large-v3-turbo" in groq_call["body"] and recording in groq_call["body"]
        assert openai_call["path"] == "/v1/audio/transcriptions" and b"gpt-4o-mini-transcribe" in openai_call["body"]

        assert read_aloud("**Paris** is the capital [1].", voice_for(openai_)) == spoken
        speech = server.bodies[-1]
        assert speech["path"] == "/v1/audio/speech"
        assert speech["body"]["model"] == "gpt-4o-mini-tts" and speech["body"]["input"] == "Paris is the capital."
        assert voice_for(groq) == SpeechProvider() and transcriber_for(replace(groq, api_key=None)) == SpeechProvider()

        server.down = True
        with pytest.raises(SpeechError, match="The groq transcription service failed"):
            transcribe(recording, "q.wav", transcriber_for(groq))
        with pytest.raises(SpeechError, match="OpenAI's speech service failed"):
            read_aloud("Something else.", voice_for(openai_))
    finally:
        server.stop()


def test_the_blob_cache_keeps_the_last_read_within_its_bytes_and_forgets_removed_ones(tmp_path):
    cache = BlobCache(max_bytes=10)
    cache.put("a", Blob(b"12345", "image/png"))
    cache.put("b", Blob(b"12345", "image/png"))
    assert cache.get("a") is not None  # "a" is now the last read
    cache.put("c", Blob(b"123", "image/png"))
    assert cache.get("b") is None and cache.get("a") and cache.get("c")
    cache.put("huge", Blob(b"x" * 11, "image/png"))
    assert cache.get("huge") is None
    cache.discard(["a"])
    assert cache.get("a") is None

    store = open_store(tmp_path / "conversations.json")
    digest = store.put_attachment(RED_SQUARE.getvalue(), "image/png")
    assert store.attachment(digest) is not None
    for path in (tmp_path / "attachments").iterdir():
        path.unlink()  # gone from disk: a second read is the cached one
    assert store.attachment(digest).data == RED_SQUARE.getvalue()
