"""Images given to a chat: checked, cleaned and made small enough to send, with Pillow.

An image the user drops into the chat box (or a client sends to ``/v1``) is refused, with a sentence
that names it, when it is larger than ``MAX_IMAGE_BYTES`` (20 MB, or PARLEY_MAX_UPLOAD_MB if that is
smaller), has more than ``MAX_PIXELS`` pixels (a decompression bomb), is cut short, or is not an
image of the accepted types whatever its name says (a zip called ``.png``). An accepted image is
decoded and encoded again: its metadata (EXIF: the camera, the place it was taken) is not copied,
a GIF keeps only its first frame, and it is scaled so that its long side is at most
``MAX_SIDE_PIXELS``. The result is PNG (for images with transparency or few colours: PNG and GIF)
or JPEG (quality 90, for JPEG and WebP photos).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import PurePath

from PIL import Image, UnidentifiedImageError

#: Suffixes the chat box takes as images (lower case).
IMAGE_TYPES = (".png", ".jpg", ".jpeg", ".webp", ".gif")
#: Pillow's format names of those types: what the bytes must really be.
IMAGE_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}
#: Largest image accepted, in bytes (the issue's limit; PARLEY_MAX_UPLOAD_MB applies when smaller).
MAX_IMAGE_BYTES = 20 * 2**20
#: Most pixels an image may have (width × height); past it, it is refused before it is decoded.
#: 40 million is a 7,000 × 5,700 photo: more than any phone camera, far below a decompression bomb.
MAX_PIXELS = 40_000_000
#: Longest side of a kept image, in pixels: OpenAI's vision models scale larger images to 2048 too.
MAX_SIDE_PIXELS = 2048
#: JPEG quality of re-encoded photos (Pillow's scale, 1 to 95).
JPEG_QUALITY = 90


class ImageError(ValueError):
    """An image cannot be used; ``str(error)`` names the file and says why, for the user."""


@dataclass(frozen=True, slots=True)
class CleanImage:
    """An image ready to store and send.

    Attributes:
        data: the encoded image (PNG or JPEG), without metadata.
        mime: ``image/png`` or ``image/jpeg``.
        width: its width, in pixels.
        height: its height, in pixels.
    """

    data: bytes
    mime: str
    width: int
    height: int


def is_image_name(name: str) -> bool:
    """True when ``name``'s suffix is one of ``IMAGE_TYPES`` (case ignored)."""
    return PurePath(name).suffix.lower() in IMAGE_TYPES


def image_limit(max_upload_bytes: int | None = None) -> int:
    """The largest image accepted, in bytes: ``MAX_IMAGE_BYTES`` or ``max_upload_bytes`` when smaller."""
    return min(MAX_IMAGE_BYTES, max_upload_bytes) if max_upload_bytes else MAX_IMAGE_BYTES


def clean_image(name: str, data: bytes, max_bytes: int = MAX_IMAGE_BYTES) -> CleanImage:
    """``data`` checked, stripped of metadata, its first frame only, scaled to ``MAX_SIDE_PIXELS``.

    Args:
        name: the file's name, for the sentences.
        data: the file's bytes.
        max_bytes: the largest file accepted, in bytes.

    Returns:
        the CleanImage (PNG for PNG and GIF, JPEG for JPEG and WebP; RGBA WebP stays PNG).

    Raises:
        ImageError: too large, too many pixels, not one of the accepted image types, or broken.
    """
    if len(data) > max_bytes:
        raise ImageError(f"{name} is {len(data) / 2**20:.1f} MB; images may be at most {max_bytes / 2**20:.0f} MB.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                kind = image.format or ""
                if kind not in IMAGE_FORMATS:
                    raise ImageError(f"{name} is not a PNG, JPEG, WebP or GIF image (it is {kind or 'unknown'}).")
                if image.width * image.height > MAX_PIXELS:
                    raise ImageError(
                        f"{name} is {image.width:,} × {image.height:,} pixels; images may have at most "
                        f"{MAX_PIXELS:,} pixels."
                    )
                image.seek(0)  # a GIF's (or animated WebP's) first frame
                image.load()
                frame = image.copy()
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"{name} has more than {MAX_PIXELS:,} pixels, more than images may have.") from exc
    except UnidentifiedImageError as exc:
        raise ImageError(f"{name} is not an image Parley can read (PNG, JPEG, WebP or GIF).") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # Pillow's words for a cut or broken file
        raise ImageError(f"{name} is broken or cut short, so it cannot be read as an image.") from exc
    return _encoded(frame, kind)


def _encoded(frame: Image.Image, kind: str) -> CleanImage:
    """``frame`` scaled down to ``MAX_SIDE_PIXELS`` and encoded without metadata."""
    frame.thumbnail((MAX_SIDE_PIXELS, MAX_SIDE_PIXELS))  # keeps the aspect ratio; never enlarges
    transparent = frame.mode in ("RGBA", "LA", "PA") or "transparency" in frame.info
    out = io.BytesIO()
    if kind in ("JPEG", "WEBP") and not transparent:
        frame.convert("RGB").save(out, "JPEG", quality=JPEG_QUALITY)
        mime = "image/jpeg"
    else:
        if frame.mode not in ("RGB", "RGBA", "L", "LA"):
            frame = frame.convert("RGBA" if transparent else "RGB")
        frame.save(out, "PNG", optimize=False)
        mime = "image/png"
    return CleanImage(out.getvalue(), mime, frame.width, frame.height)
