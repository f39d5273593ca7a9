"""Image work for the media worker: a guarded decode, metadata stripped, thumbnails, a blurhash.

Everything here is synchronous and CPU-bound; the worker runs it in a thread. A file
that can never be processed raises Rejected with a stable reason code.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import fast_blurhash
from PIL import Image, ImageCms, ImageOps

from workers.media_strip import strip_animation

# Long side of each thumbnail; a size not smaller than the image is skipped (never upscaled).
THUMB_SIZES = (("thumb_1280", 1280), ("thumb_320", 320))
PILLOW_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP",
                  "image/gif": "GIF"}
# What Pillow raises on broken input besides its own types (plugins parse with struct,
# index into short buffers, and use SyntaxError for malformed headers).
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, TypeError,
                 ZeroDivisionError, zlib.error)
JPEG_QUALITY = 88
THUMB_QUALITY = 82
# Pillow shrinks by whole factors first while the rest is at least this ratio: much faster,
# and at 2 the result is hard to tell from a full Lanczos resample.
THUMB_REDUCING_GAP = 2.0
BLURHASH_SOURCE_PX = 64


class Rejected(Exception):
    """A permanent failure: these bytes will never process; reason is a stable code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Output:
    """One encoded variant, ready to store."""

    variant: str
    data: bytes
    content_type: str
    width: int
    height: int


@dataclass(frozen=True)
class ImageResult:
    width: int
    height: int
    blurhash: str
    outputs: list[Output]


def process_image(path: Path, content_type: str, max_pixels: int) -> ImageResult:
    """Decode the original under the pixel limit and make the stripped copy and thumbnails."""
    try:
        # Pillow refuses past twice Image.MAX_IMAGE_PIXELS and only warns below that; the
        # check in _process refuses from max_pixels on, before anything is decoded.
        with Image.open(path) as img:
            return _process(img, path, content_type, max_pixels)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise Rejected("decompression_bomb", str(exc)) from exc
    except Rejected:
        raise
    except DECODE_ERRORS as exc:
        raise Rejected("corrupt", f"{type(exc).__name__}: {exc}") from exc


def _process(img: Image.Image, path: Path, content_type: str, max_pixels: int) -> ImageResult:
    expected = PILLOW_FORMATS.get(content_type)
    if expected is None or img.format != expected:
        raise Rejected("type_mismatch", f"the content decodes as {img.format}, not {content_type}")
    # Checked on the header's size, before a single pixel is decoded.
    if img.width * img.height > max_pixels:
        raise Rejected("decompression_bomb",
                       f"{img.width}x{img.height} is more than {max_pixels} pixels")
    animated = bool(getattr(img, "is_animated", False))
    img.load()  # the first frame only, for an animation
    # Rotated as the camera meant it, so dropping the EXIF orientation changes nothing.
    picture = _srgb(_oriented(img))
    width, height = picture.size
    if animated:
        # Animations keep their frames: the container is rewritten without metadata, and
        # thumbnails and the blurhash come from the first frame.
        try:
            full = Output("full", strip_animation(path.read_bytes(), expected), content_type,
                          width, height)
        except ValueError as exc:
            raise Rejected("corrupt", str(exc)) from exc
    else:
        full = Output("full", _encode(picture, expected), content_type, width, height)
    thumbs, smallest = thumbnails(picture)
    return ImageResult(width=width, height=height, blurhash=blurhash_of(smallest),
                       outputs=[full, *thumbs])


def _oriented(img: Image.Image) -> Image.Image:
    """A copy turned upright by its EXIF orientation; as it is if the EXIF cannot be read."""
    try:
        return ImageOps.exif_transpose(img)
    except DECODE_ERRORS:
        return img.copy()  # broken EXIF is dropped with the rest; the pixels are fine


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        img.mode == "P" and "transparency" in img.info)


def _srgb(img: Image.Image) -> Image.Image:
    """The picture in sRGB with no metadata left: EXIF (GPS), XMP, ICC, comments, text."""
    icc = img.info.get("icc_profile")
    alpha = _has_alpha(img)
    if img.mode not in ("1", "L", "RGB", "RGBA"):
        img = img.convert("RGBA" if alpha else "RGB")
    if icc and img.mode in ("RGB", "RGBA"):
        # Dropping a profile without converting would shift wide-gamut colours (phone photos).
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(img, source, ImageCms.createProfile("sRGB"),
                                                  outputMode=img.mode)
            if converted is not None:
                img = converted
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a broken profile is dropped as it is
    # Encoders write what info holds (PNG its ICC profile, JPEG its comment): keep only
    # the transparency, which is part of the picture. img is a copy made by exif_transpose.
    img.info = {"transparency": img.info["transparency"]} if "transparency" in img.info else {}
    return img


def _encode(img: Image.Image, image_format: str) -> bytes:
    """The pixels re-encoded in the upload's format, with nothing else written."""
    out = io.BytesIO()
    if image_format == "JPEG":
        img = img if img.mode in ("L", "RGB") else img.convert("RGB")
        # No optimize pass: it triples the encode time of a photo for ~2% fewer bytes.
        img.save(out, "JPEG", quality=JPEG_QUALITY)
    elif image_format == "WEBP":
        img.save(out, "WEBP", quality=JPEG_QUALITY, method=4)
    elif image_format == "GIF":
        img.save(out, "GIF")
    else:
        img.save(out, "PNG")
    return out.getvalue()


def thumbnails(img: Image.Image) -> tuple[list[Output], Image.Image]:
    """JPEG thumbnails (WebP when the image has transparency), largest first, never upscaled;
    also the smallest picture made, for the blurhash."""
    alpha = _has_alpha(img)
    source = img if img.mode == ("RGBA" if alpha else "RGB") else img.convert(
        "RGBA" if alpha else "RGB")
    made = []
    for variant, size in THUMB_SIZES:
        if max(source.size) <= size:
            continue
        scale = size / max(source.size)
        target = (max(1, round(source.width * scale)), max(1, round(source.height * scale)))
        # Each smaller thumbnail starts from the larger one: far less to resample.
        source = source.resize(target, Image.Resampling.LANCZOS, reducing_gap=THUMB_REDUCING_GAP)
        out = io.BytesIO()
        if alpha:
            source.save(out, "WEBP", quality=THUMB_QUALITY, method=4)
            made.append(Output(variant, out.getvalue(), "image/webp", *source.size))
        else:
            source.save(out, "JPEG", quality=THUMB_QUALITY, optimize=True)
            made.append(Output(variant, out.getvalue(), "image/jpeg", *source.size))
    return made, source


def blurhash_of(img: Image.Image) -> str:
    """A compact placeholder; transparent areas are shown over white."""
    small = img.copy()
    small.thumbnail((BLURHASH_SOURCE_PX, BLURHASH_SOURCE_PX), Image.Resampling.BILINEAR)
    if _has_alpha(small):
        rgba = small.convert("RGBA")
        small = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
    small = small.convert("RGB")
    # More components along the longer side keep the shape of the blur.
    x, y = (4, 3) if small.width >= small.height else (3, 4)
    return fast_blurhash.encode(small.tobytes(), x, y, small.width, small.height)


def video_stills(poster: Path) -> ImageResult:
    """The poster frame ffmpeg wrote, with a small thumbnail and the blurhash of the video."""
    try:
        with Image.open(poster) as img:
            img.load()
            picture = img.convert("RGB")
    except DECODE_ERRORS as exc:
        raise Rejected("ffmpeg_failed", f"unreadable poster frame: {exc}") from exc
    thumbs, smallest = thumbnails(picture)
    full = Output("poster", poster.read_bytes(), "image/jpeg", *picture.size)
    return ImageResult(width=picture.width, height=picture.height,
                       blurhash=blurhash_of(smallest), outputs=[full, *thumbs])
