"""Images and speech over the chat server's /v1 with the openai SDK: an image part read as text for a
text-only model, the same part sent on as an ``image_url`` to a vision model (LLM_VISION=1), speech
to text and text to speech on the offline models, and bad input answered with a 4xx that says why.
The chat provider is scripted (its requests are recorded); speech runs on the real Whisper and Piper."""

from __future__ import annotations

import base64
import io
import wave

import httpx
import openai
import pytest

from tests.scripted_server import Say, ScriptedServer
from tests.test_api import KEY, start_api, stop_api
from tests.test_media import INVOICE, invoice_png, tone_wav
from utils.speech import piper_wav


@pytest.fixture(scope="module")
def provider():
    server = ScriptedServer([Say("Noted.")]).start()
    yield server
    server.stop()


def _api(tmp_path_factory, provider, **env):
    settings = {"LLM_PROVIDER": "openai_like", "LLM_BASE_URL": provider.base_url, "LLM_MODEL": "scripted", **env}
    return start_api(tmp_path_factory.mktemp("media"), None, **settings)


@pytest.fixture(scope="module")
def api(tmp_path_factory, provider):
    server = _api(tmp_path_factory, provider)
    yield server
    stop_api(server)


def sdk(api) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{api.url}/v1", api_key=KEY, max_retries=0, timeout=120)


def image_message(data: bytes = b"", url: str | None = None) -> list[dict]:
    link = url or f"data:image/png;base64,{base64.b64encode(data or invoice_png()).decode()}"
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is the invoice number?"},
                {"type": "image_url", "image_url": {"url": link}},
            ],
        }
    ]


def test_an_image_part_reaches_a_text_only_model_as_the_text_ocr_read(api, provider):
    provider.play([Say("It is on the invoice.")])
    answer = sdk(api).chat.completions.create(model="scripted", messages=image_message())
    assert answer.choices[0].message.content == "It is on the invoice."
    sent = provider.bodies[-1]["messages"][-1]["content"]
    text = sent if isinstance(sent, str) else " ".join(p.get("text", "") for p in sent)
    assert INVOICE in text and "image_url" not in str(sent)


def test_an_image_part_reaches_a_vision_model_as_an_image_url(tmp_path_factory, provider):
    server = _api(tmp_path_factory, provider, LLM_VISION="1")
    try:
        provider.play([Say("A page.")])
        sdk(server).chat.completions.create(model="scripted", messages=image_message())
        parts = provider.bodies[-1]["messages"][-1]["content"]
        images = [p for p in parts if p["type"] == "image_url"]
        assert len(images) == 1 and images[0]["image_url"]["url"].startswith("data:image/png;base64,")
        sent = base64.b64decode(images[0]["image_url"]["url"].split(",", 1)[1])
        assert sent.startswith(b"\x89PNG")  # re-encoded by Parley, metadata gone
    finally:
        stop_api(server)


@pytest.mark.parametrize(
    "message, says",
    [
        (image_message(url="https://example.com/cat.png"), "must be a base64 data URL"),
        (image_message(b"PK\x03\x04 not an image"), "image 1 is not an image Parley can read"),
        (image_message(invoice_png()[:300]), "image 1 is broken or cut short"),
    ],
)
def test_bad_image_parts_get_a_400_that_names_them(api, message, says):
    with pytest.raises(openai.BadRequestError) as refused:
        sdk(api).chat.completions.create(model="scripted", messages=message)
    assert says in refused.value.message


def test_speech_to_text_with_the_sdk(api):
    client = sdk(api)
    heard = client.audio.transcriptions.create(
        model="whisper-1", file=("q.wav", piper_wav("The weather is sunny today."))
    )
    assert "sunny" in heard.text.lower()
    plain = client.audio.transcriptions.create(
        model="whisper-1", file=("q.wav", piper_wav("Good morning.")), response_format="text"
    )
    assert "morning" in str(plain).lower()


@pytest.mark.parametrize(
    "data, form, status, says",
    [
        (None, {"model": "whisper-1"}, 400, "No speech was heard"),
        (b"RIFF0000WAVEjunk", {"model": "whisper-1"}, 400, "could not be read as audio"),
        (b"", {"model": "whisper-1", "response_format": "srt"}, 400, "use json or text"),
    ],
)
def test_bad_recordings_get_a_400_that_says_why(api, data, form, status, says):
    recording = tone_wav(2, silent=True) if data is None else data
    answer = httpx.post(
        f"{api.url}/v1/audio/transcriptions",
        headers={"Authorization": f"Bearer {KEY}"},
        files={"file": ("r.wav", recording, "audio/wav")},
        data=form,
        timeout=120,
    )
    assert answer.status_code == status and says in answer.json()["error"]["message"]


def test_a_recording_over_25_mb_gets_413_and_no_key_gets_401(api):
    big = httpx.post(
        f"{api.url}/v1/audio/transcriptions",
        headers={"Authorization": f"Bearer {KEY}"},
        files={"file": ("big.wav", b"\0" * (26 * 2**20), "audio/wav")},
        data={"model": "whisper-1"},
        timeout=120,
    )
    assert big.status_code == 413
    anonymous = httpx.post(f"{api.url}/v1/audio/speech", json={"model": "tts-1", "input": "hi", "voice": "alloy"})
    assert anonymous.status_code == 401


def test_text_to_speech_in_wav_and_mp3_and_other_formats_refused(api):
    client = sdk(api)
    wav = client.audio.speech.create(model="tts-1", voice="alloy", input="Hello there.", response_format="wav")
    with wave.open(io.BytesIO(wav.read())) as reader:
        assert reader.getnframes() / reader.getframerate() > 0.3
    mp3 = client.audio.speech.create(model="tts-1", voice="alloy", input="Hello there.")
    assert mp3.read()[:3] in (b"ID3", b"\xff\xfb", b"\xff\xf3")
    with pytest.raises(openai.BadRequestError) as refused:
        client.audio.speech.create(model="tts-1", voice="alloy", input="Hello.", response_format="opus")
    assert "use mp3 or wav" in refused.value.message
