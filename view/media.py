"""Images and voice in the chat: a message's images as thumbnails (Streamlit's image viewer opens
one full size), a spoken message's mark and recording, the images a tool call made, "Read aloud"
under each reply, and the sidebar's "Read replies aloud" switch.

Every image shown here is bytes Parley stored (``model.attachments``), given to ``st.image``: the
browser fetches nothing a message names.
"""

from __future__ import annotations

import streamlit as st

from controller.chat import Chat
from controller.speech import read_aloud, voice_for
from model.attachments import AttachmentReader
from model.message import Attachment, Message
from utils.speech import SpeechError
from view.markdown import plain

#: Width of a message's image thumbnails, in pixels.
THUMBNAIL_PIXELS = 160
#: The "Read replies aloud" switch's widget key.
READ_REPLIES_KEY = "read_replies_aloud"


def _speak_key(page: str) -> str:
    return f"{page}_speak"


def _spoken_key(page: str) -> str:
    return f"{page}_spoken_job"


def attachment_views(message: Message, reader: AttachmentReader) -> None:
    """Under a user message: its images as thumbnails (with "read as text" when OCR read them for a
    model that cannot see images), "🎤" and the recording when it was spoken, and each attached
    document with how much of its text was sent."""
    images = [a for a in message.attachments if a.is_image]
    if images:
        _thumbnails(images, reader)
    for attachment in message.attachments:
        if attachment.is_image and attachment.ocr:
            st.caption(f"🖼️ {plain(attachment.name)} · read as text: this model cannot see images.")
        elif attachment.is_audio:
            st.caption("🎤 Spoken")
            blob = reader.attachment(attachment.sha256)
            if blob is not None:
                st.audio(blob.data, format=blob.mime)
        elif not attachment.is_image:
            _document_line(attachment)


def _document_line(attachment: Attachment) -> None:
    used, total = attachment.used_chars, attachment.total_chars
    if used >= total:
        st.caption(f"📎 {plain(attachment.name)} · all {total:,} characters were sent with this message.")
    else:
        st.caption(
            f"📎 {plain(attachment.name)} · the first {used:,} of {total:,} characters were sent; "
            "the rest does not fit the model's context window."
        )


def _thumbnails(images: list[Attachment], reader: AttachmentReader, width: int = THUMBNAIL_PIXELS) -> None:
    """``images`` side by side, each ``width`` pixels wide, captioned with its name; one no longer
    stored is named as such."""
    with st.container(horizontal=True, gap="small"):
        for image in images:
            blob = reader.attachment(image.sha256)
            if blob is None:
                st.caption(f"🖼️ {plain(image.name)} (no longer stored)")
            else:
                st.image(blob.data, caption=image.name, width=width)


def tool_images(message: Message, reader: AttachmentReader) -> None:
    """In a reply: the images its tool calls made (Run Python's charts), at full width."""
    images = [image for call in message.tool_calls for image in call.images]
    for image in images:
        blob = reader.attachment(image.sha256)
        if blob is not None:
            st.image(blob.data, caption=image.name)


def read_aloud_button(page: str, key: str) -> None:
    """ "Read aloud" under a reply (``key`` is its widget key stem)."""
    st.button("Read aloud", icon="🔊", key=f"{key}-read", help="Read aloud", on_click=_ask_to_speak, args=(page, key))


def _ask_to_speak(page: str, key: str) -> None:
    st.session_state[_speak_key(page)] = key


def read_replies_toggle() -> bool:
    """The sidebar's "Read replies aloud" switch; True when on."""
    return bool(st.toggle("Read replies aloud", key=READ_REPLIES_KEY, help="Each new reply is read out when it ends."))


def speak_if_asked(chat: Chat, page: str, message: Message, key: str, is_last: bool) -> None:
    """Play reply ``message`` read out, when "Read aloud" was pressed under it, or when it is the
    reply that just ended and "Read replies aloud" is on (once per reply)."""
    asked = st.session_state.get(_speak_key(page)) == key
    job = chat.job
    new_reply = (
        is_last
        and st.session_state.get(READ_REPLIES_KEY, False)
        and job is not None
        and job.done
        and job.error is None
        and st.session_state.get(_spoken_key(page)) != id(job)
    )
    if not asked and not new_reply:
        return
    if new_reply:
        st.session_state[_spoken_key(page)] = id(job)
    st.session_state.pop(_speak_key(page), None)
    try:
        with st.spinner("Reading aloud…"):
            wav = read_aloud(message.content, voice_for(chat.config))
    except SpeechError as exc:
        st.warning(str(exc))
        return
    st.audio(wav, format="audio/wav", autoplay=True)
