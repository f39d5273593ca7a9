"""Real image and video files for media tests, made with Pillow and the bundled ffmpeg."""

from __future__ import annotations

import io
import struct
import subprocess
import uuid
import zlib
from pathlib import Path

from PIL import Image, ImageCms, PngImagePlugin

from workers.media_video import ffmpeg_exe

RED = (220, 30, 30)
BLUE = (30, 30, 220)
# Paris, as a camera writes it: the thing that must never reach other users.
GPS = {1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)}


def two_tone(width: int, height: int, mode: str = "RGB") -> Image.Image:
    """Left half red, right half blue (see-through with alpha): where each half ends up shows
    the rotation."""
    img = Image.new(mode, (width, height), BLUE if mode == "RGB" else (*BLUE, 128))
    img.paste(RED if mode == "RGB" else (*RED, 255), (0, 0, width // 2, height))
    return img


def camera_exif(orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x0110] = "Phone 15"  # Model
    exif[0x8825] = GPS  # the GPS IFD
    return exif


def jpeg(width: int = 640, height: int = 480, *, orientation: int | None = None,
         icc: bool = False) -> bytes:
    out = io.BytesIO()
    extra: dict[str, object] = {}
    if orientation is not None:
        extra["exif"] = camera_exif(orientation)
    if icc:
        extra["icc_profile"] = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    two_tone(width, height).save(out, "JPEG", quality=90, comment=b"shot at home", **extra)
    return out.getvalue()


def png(width: int, height: int, *, alpha: bool = False) -> bytes:
    """A PNG with a text chunk and EXIF (with GPS), as some editors write them."""
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "my secret note")
    out = io.BytesIO()
    two_tone(width, height, "RGBA" if alpha else "RGB").save(
        out, "PNG", pnginfo=info, exif=camera_exif())
    return out.getvalue()


def gif_animation(width: int = 400, height: int = 300, frames: int = 3) -> bytes:
    """An animated GIF with a comment extension."""
    images = [Image.new("RGB", (width, height), (n * 60 % 256, 90, 255 - n * 60 % 256))
              for n in range(frames)]
    out = io.BytesIO()
    images[0].save(out, "GIF", save_all=True, append_images=images[1:], duration=100, loop=0,
                   comment=b"made in my kitchen")
    return out.getvalue()


def png_bomb(width: int = 50_000, height: int = 50_000) -> bytes:
    """A tiny PNG whose header claims a huge picture (the classic decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\x00" * 4096, 9)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows)
            + chunk(b"IEND", b""))


def video(work: Path, *, size: str = "320x240", seconds: float = 2, container: str = "mp4",
          audio: bool = True, video_stream: bool = True, rotate: int | None = None) -> bytes:
    """A test-pattern video with a tone, carrying a location and a title in its metadata."""
    out = work / f"made-{size}-{seconds}-{rotate}-{audio}-{video_stream}.{container}"
    args = [ffmpeg_exe(), "-hide_banner", "-v", "error", "-y"]
    if video_stream:
        if rotate is not None:
            args += ["-display_rotation", str(rotate)]
        args += ["-f", "lavfi", "-i", f"testsrc=size={size}:rate=10"]
    if audio:
        args += ["-f", "lavfi", "-i", "sine=frequency=440"]
    args += ["-t", str(seconds)]
    if container == "webm":
        args += ["-c:v", "libvpx", "-b:v", "200k", "-c:a", "libvorbis"]
    else:
        args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac"]
    args += ["-metadata", "title=secret title", "-metadata", "location=+48.8584+002.2945/",
             str(out)]
    subprocess.run(args, check=True, timeout=120, stdin=subprocess.DEVNULL)
    return out.read_bytes()


def describe(data: bytes, work: Path, name: str = "probe.bin") -> str:
    """ffmpeg's description of a file (its stderr for `ffmpeg -i`)."""
    path = work / name
    path.write_bytes(data)
    done = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True,
                          timeout=60, stdin=subprocess.DEVNULL)
    return done.stderr.decode(errors="replace")


def make_video(work: Path, *, size: str = "160x120", seconds: float = 2.0, fps: int = 10,
               audio: str | None = "tone") -> bytes:
    """A testsrc MP4; audio is "tone" (a 440 Hz sine), "silent" (a silent track) or None."""
    out = work / f"clip-{uuid.uuid4().hex}.mp4"
    args = [ffmpeg_exe(), "-hide_banner", "-v", "error", "-y", "-f", "lavfi",
            "-i", f"testsrc=size={size}:rate={fps}"]
    if audio == "tone":
        args += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=22050"]
    elif audio == "silent":
        args += ["-f", "lavfi", "-i", "anullsrc=r=22050:cl=mono"]
    args += ["-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    if audio is not None:
        args += ["-c:a", "aac", "-b:a", "32k"]
    subprocess.run([*args, str(out)], check=True, timeout=120, stdin=subprocess.DEVNULL)
    return out.read_bytes()
