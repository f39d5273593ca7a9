"""Lossless metadata removal for animated images, whose frames are kept as they are.

Still images are re-encoded from their pixels (workers/media_images.py); re-encoding
every frame of an animation would cost far more and lose quality, so for animations
the container is rewritten with only the chunks that draw the picture. Each function
raises ValueError on a malformed file.
"""

from __future__ import annotations

import struct

# Graphic control (frame timing, transparency) and plain text are drawing; comments are not.
GIF_KEEP_EXTENSIONS = frozenset({0xF9, 0x01})
# Application extensions that only set the loop count.
GIF_KEEP_APPLICATIONS = frozenset({b"NETSCAPE2.0", b"ANIMEXTS1.0"})
# Critical chunks, animation control, transparency and colour rendering; text, EXIF,
# ICC profiles and timestamps go.
PNG_KEEP_CHUNKS = frozenset({b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"acTL", b"fcTL", b"fdAT",
                             b"gAMA", b"cHRM", b"sRGB", b"cICP", b"sBIT", b"bKGD"})
WEBP_DROP_CHUNKS = frozenset({b"ICCP", b"EXIF", b"XMP "})
# VP8X flag bits announcing an ICC profile, EXIF and XMP: cleared with their chunks.
WEBP_METADATA_FLAGS = 0x20 | 0x08 | 0x04
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _skip_sub_blocks(data: bytes, pos: int) -> int:
    """The position after a GIF sub-block chain starting at pos (its 0 terminator included)."""
    while True:
        if pos >= len(data):
            raise ValueError("GIF data ends inside a block")
        size = data[pos]
        pos += 1
        if size == 0:
            return pos
        pos += size


def _color_table_size(flags: int) -> int:
    return 3 * (2 << (flags & 0x07)) if flags & 0x80 else 0


def strip_gif(data: bytes) -> bytes:
    """The GIF with comment and application extensions removed (loop count kept)."""
    if data[:6] not in (b"GIF87a", b"GIF89a") or len(data) < 13:
        raise ValueError("not a GIF")
    pos = 13 + _color_table_size(data[10])
    out = [data[:pos]]
    while pos < len(data):
        marker = data[pos]
        if marker == 0x3B:  # trailer
            break
        if marker == 0x21:
            if pos + 2 > len(data):
                raise ValueError("GIF data ends inside an extension")
            label = data[pos + 1]
            end = _skip_sub_blocks(data, pos + 2)
            application = data[pos + 3:pos + 14] if label == 0xFF and data[pos + 2] == 11 else None
            if label in GIF_KEEP_EXTENSIONS or application in GIF_KEEP_APPLICATIONS:
                out.append(data[pos:end])
            pos = end
        elif marker == 0x2C:
            if pos + 11 > len(data):
                raise ValueError("GIF data ends inside an image descriptor")
            # Descriptor (10 bytes), local colour table, LZW code size, then the data blocks.
            end = _skip_sub_blocks(data, pos + 10 + _color_table_size(data[pos + 9]) + 1)
            out.append(data[pos:end])
            pos = end
        else:
            raise ValueError(f"unexpected GIF block 0x{marker:02x}")
    # Browsers accept a GIF that stops after a whole frame; it is written properly here.
    out.append(b"\x3b")
    return b"".join(out)


def strip_png(data: bytes) -> bytes:
    """The PNG (or APNG) with only the chunks that draw it."""
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG")
    pos = len(PNG_SIGNATURE)
    out = [PNG_SIGNATURE]
    while True:
        if pos + 12 > len(data):
            raise ValueError("PNG data ends inside a chunk")
        length = struct.unpack(">I", data[pos:pos + 4])[0]
        kind = data[pos + 4:pos + 8]
        end = pos + 12 + length
        if end > len(data):
            raise ValueError("PNG data ends inside a chunk")
        if kind in PNG_KEEP_CHUNKS:
            out.append(data[pos:end])  # the CRC covers only the type and data: still valid
        pos = end
        if kind == b"IEND":
            return b"".join(out)


def strip_webp(data: bytes) -> bytes:
    """The WebP without its ICC, EXIF and XMP chunks, and the VP8X flags announcing them."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise ValueError("not a WebP")
    riff_end = min(len(data), 8 + struct.unpack("<I", data[4:8])[0])
    pos = 12
    chunks = []
    while pos + 8 <= riff_end:
        fourcc = data[pos:pos + 4]
        size = struct.unpack("<I", data[pos + 4:pos + 8])[0]
        payload = data[pos + 8:pos + 8 + size]
        if len(payload) != size:
            raise ValueError("WebP data ends inside a chunk")
        pos += 8 + size + (size & 1)
        if fourcc in WEBP_DROP_CHUNKS:
            continue
        if fourcc == b"VP8X" and payload:
            payload = bytes([payload[0] & ~WEBP_METADATA_FLAGS & 0xFF]) + payload[1:]
        chunks.append(fourcc + struct.pack("<I", size) + payload + b"\x00" * (size & 1))
    body = b"WEBP" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def strip_animation(data: bytes, image_format: str) -> bytes:
    """The animation (Pillow's format name: GIF, PNG or WEBP) without its metadata."""
    if image_format == "GIF":
        return strip_gif(data)
    if image_format == "PNG":
        return strip_png(data)
    if image_format == "WEBP":
        return strip_webp(data)
    raise ValueError(f"no metadata stripper for {image_format}")
