"""Speech over the OpenAI-compatible API, in the shapes of OpenAI's reference:

- ``POST /v1/audio/transcriptions`` (multipart: ``file``, ``model``, optional ``response_format``
  ``json`` or ``text``, ``language``, ``prompt``, ``temperature``): ``{"text": ...}``;
- ``POST /v1/audio/speech`` (JSON: ``model``, ``input``, ``voice``, ``response_format`` ``wav`` or
  ``mp3``, ``speed``, ``instructions``): the audio's bytes.

Both take one of the model slots (PARLEY_API_MAX_CONCURRENT; 429 past the queue), as a chat does.
Both are offline by default (``utils.speech``: Whisper tiny.en and Piper), or use the configured
provider's speech models when it is Groq or OpenAI with a key (``controller.speech``). The model a
client names is accepted whatever it is (OpenAI's own names, ``whisper-1``, included). A recording
may be at most 25 MB (the body limit of this path) and 10 minutes; anything else a client sends
wrong gets a 400 that says what.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from api.deps import State, require_key
from api.errors import APIError
from controller.speech import transcriber_for, voice_for
from utils.speech import MAX_AUDIO_BYTES, MAX_SPEECH_CHARS, SpeechError, mp3_of, synthesize, transcribe

router = APIRouter(prefix="/v1/audio", tags=["openai"], dependencies=[Depends(require_key)])
#: Body limits of this router's paths, in bytes: a recording and the form around it.
LARGER_BODIES = {"/v1/audio/transcriptions": MAX_AUDIO_BYTES + 64 * 1024}


class Transcription(BaseModel):
    """OpenAI's ``CreateTranscriptionResponseJson``: the text."""

    text: str


class SpeechRequest(BaseModel):
    """OpenAI's ``CreateSpeechRequest``; an unknown field is a 400 naming it."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1)
    input: str = Field(min_length=1, max_length=MAX_SPEECH_CHARS)
    voice: str | dict[str, str] = "alloy"
    instructions: str | None = Field(default=None, max_length=MAX_SPEECH_CHARS)
    response_format: Literal["mp3", "opus", "aac", "flac", "wav", "pcm"] = "mp3"
    speed: float = Field(default=1.0, ge=0.25, le=4.0)
    stream_format: Literal["sse", "audio"] | None = None


@router.post("/transcriptions", response_model=Transcription)
async def transcriptions(
    state: State,
    file: Annotated[UploadFile, File(description="the recording (wav, mp3, m4a, webm, ogg, flac)")],
    model: Annotated[str, Form(min_length=1)],
    response_format: Annotated[str, Form()] = "json",
    language: Annotated[str | None, Form()] = None,
    prompt: Annotated[str | None, Form()] = None,
    temperature: Annotated[float | None, Form(ge=0.0, le=1.0)] = None,
) -> Transcription | PlainTextResponse:
    """The words spoken in ``file``.

    Raises:
        APIError: 400 for a response format other than json or text, an empty file, no speech, a
            recording that cannot be decoded or lasts more than 10 minutes; 413 past 25 MB; 502
            when the provider's transcription failed.
    """
    if response_format not in ("json", "text"):
        raise APIError(
            400, f"response_format {response_format!r} is not offered here: use json or text.", "invalid_value"
        )
    data = await file.read(MAX_AUDIO_BYTES + 1)
    if len(data) > MAX_AUDIO_BYTES:
        raise APIError(413, "The recording is larger than 25 MB.", "request_too_large")
    provider = transcriber_for(state.config())
    try:
        async with state.slots.slot():
            text = await run_in_threadpool(transcribe, data, file.filename or "the recording", provider)
    except SpeechError as exc:
        status = 502 if provider.provider != "local" and "service" in str(exc) else 400
        raise APIError(status, str(exc), "invalid_audio" if status == 400 else "upstream_error") from exc
    if response_format == "text":
        return PlainTextResponse(text)
    return Transcription(text=text)


@router.post("/speech", response_class=Response, responses={200: {"content": {"audio/mpeg": {}, "audio/wav": {}}}})
async def speech(state: State, body: SpeechRequest) -> Response:
    """``body.input`` read out, as WAV or MP3 (other formats: 400).

    Raises:
        APIError: 400 for another response format or streaming as server-sent events; 502 when
            no voice could speak.
    """
    if body.response_format not in ("wav", "mp3"):
        raise APIError(
            400, f"response_format {body.response_format!r} is not offered here: use mp3 or wav.", "invalid_value"
        )
    if body.stream_format == "sse":
        raise APIError(400, "stream_format sse is not offered here: the audio comes whole.", "invalid_value")
    try:
        async with state.slots.slot():
            wav = await run_in_threadpool(synthesize, body.input, voice_for(state.config()))
            audio = wav if body.response_format == "wav" else await run_in_threadpool(mp3_of, wav)
    except SpeechError as exc:
        raise APIError(502, str(exc), "speech_failed") from exc
    return Response(audio, media_type="audio/wav" if body.response_format == "wav" else "audio/mpeg")
