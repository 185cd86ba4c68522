"""Images of datasets and serving requests: their bytes (a ``data:`` URL, or a ``gs://`` object under the bucket
root), checked and opened.

Every check names what is wrong and the fix: the type (JPEG, PNG and WEBP only; GIF, PDF and the rest refused by
what the bytes are, not by their name), a declared type that does not match the bytes, a missing object, a path that
would leave the bucket root, a file over the size limit, an image too large in pixels, or bytes that do not open.
Training reads each image when it validates the dataset and again when it batches it (nothing holds every image in
memory); serving reads a request's images once.
"""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Sequence

from tuneforge import storage
from tuneforge.data.conversation import ImagePart
from tuneforge.errors import InvalidArgument
from tuneforge.settings import Settings, get_settings

IMAGE_MIME_TYPES = ("image/jpeg", "image/png", "image/webp")

# What refused bytes are, so the message can say it ("a GIF image"), not only what they are not.
_OTHER_KINDS = (
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"BM", "a BMP image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"\x00\x00\x01\x00", "an ICO image"),
)


class ImageError(InvalidArgument):
    """An image that cannot be used; the message says why and what to do."""


def sniff(data: bytes) -> str | None:
    """The image type of ``data`` by its first bytes (None when it is none of JPEG, PNG, WEBP)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _what(data: bytes) -> str:
    return next((name for magic, name in _OTHER_KINDS if data.startswith(magic)), "not an image type tuneforge reads")


def image_bytes(part: ImagePart, settings: Settings | None = None, access: storage.Access | None = None) -> bytes:
    """The bytes of ``part``: a decoded data: URL, or the gs:// object (under the bucket root, never outside it; with
    ``access``, in a bucket the client's project may read)."""
    settings = settings or get_settings()
    if part.uri.startswith("data:"):
        payload = part.uri.partition(",")[2]
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ImageError("the data URL's payload is not valid base64; re-encode the image") from exc
    try:
        storage.check_client_uri(part.uri, "image", settings, access=access)
        path = storage.fetch(part.uri, settings)
    except storage.StorageError as exc:
        raise ImageError(f"image {exc}") from exc
    if not path.is_file():
        raise ImageError(f"image {part.uri} is a folder, not a file; name the image file")
    size = path.stat().st_size
    if size > settings.max_image_bytes:
        raise ImageError(_too_large(size, settings))
    return path.read_bytes()


def _too_large(size: int, settings: Settings) -> str:
    return (
        f"image is {size:,} bytes, over the {settings.max_image_bytes:,}-byte limit (TUNEFORGE_MAX_IMAGE_BYTES); "
        "resize or recompress it"
    )


def open_image(part: ImagePart, settings: Settings | None = None, access: storage.Access | None = None):
    """``part`` as an RGB PIL image, after every check; raises ImageError with the reason and the fix."""
    from PIL import Image  # lazy: PIL only for runs and requests with images

    settings = settings or get_settings()
    data = image_bytes(part, settings, access)
    if len(data) > settings.max_image_bytes:
        raise ImageError(_too_large(len(data), settings))
    kind = sniff(data)
    if kind is None:
        raise ImageError(f"the bytes are {_what(data)}; use a JPEG, PNG or WEBP image (convert the file)")
    if part.mime_type and part.mime_type != kind:
        raise ImageError(
            f"declared {part.mime_type} but the bytes are {kind}; fix the declared type (or the file's extension)"
        )
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > settings.max_image_pixels:
                raise ImageError(
                    f"image is {width}x{height} pixels, over the {settings.max_image_pixels:,}-pixel limit "
                    "(TUNEFORGE_MAX_IMAGE_PIXELS); resize it"
                )
            return image.convert("RGB")
    except ImageError:
        raise
    except Exception as exc:  # PIL raises many kinds for damaged files
        raise ImageError(f"the {kind} image does not open ({type(exc).__name__}: {exc}); re-save the file") from exc


def open_images(
    parts: Sequence[ImagePart], settings: Settings | None = None, access: storage.Access | None = None
) -> list:
    return [open_image(p, settings, access) for p in parts]
