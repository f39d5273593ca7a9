"""Video work for the media worker: probe, poster frame and an H.264/AAC MP4 rendition.

ffmpeg is the binary shipped in the imageio-ffmpeg wheel, so nothing is installed on
the system. Each run is a subprocess with a time limit; a run that fails or overruns
raises Rejected (permanent), and its process is killed, also when the job is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg

from workers.media_images import Rejected

MAX_LONG_SIDE = 1280
# Fit within MAX_LONG_SIDE (never upscaled), both sides even as yuv420p needs; ffmpeg has
# already applied the rotation of phone videos when this runs, so iw/ih are as shown.
SCALE_FILTER = (
    f"scale=w='max(2,trunc(iw*min(1,{MAX_LONG_SIDE}/max(iw,ih))/2)*2)'"
    f":h='max(2,trunc(ih*min(1,{MAX_LONG_SIDE}/max(iw,ih))/2)*2)'"
)
DURATION = re.compile(r"Duration: (\d+):(\d{2}):(\d{2}(?:\.\d+)?)")
VIDEO_STREAM = re.compile(r"Stream #\d+:\d+[^\n]*?: Video: ([^\n]*)")
AUDIO_STREAM = re.compile(r"Stream #\d+:\d+[^\n]*?: Audio: ")
# "320x240" but not the "0x31637661" of a codec tag.
FRAME_SIZE = re.compile(r"(?<![\w.])(\d{1,5})x(\d{1,5})(?![\w.])")
ROTATION = re.compile(r"rotation of (-?\d+(?:\.\d+)?) degrees")
STDERR_TAIL = 600


@dataclass(frozen=True)
class Probe:
    """What a video shows: its size as displayed (rotation applied) and its length."""

    width: int
    height: int
    duration_ms: int | None
    has_audio: bool


def ffmpeg_exe() -> str:
    return str(imageio_ffmpeg.get_ffmpeg_exe())


def parse_probe(text: str) -> Probe | None:
    """The input's first video stream and duration from ffmpeg's stderr; None if it has none."""
    # Only the input's description: an output section would describe our own encode.
    section = text.split("Output #0", 1)[0].split("Stream mapping:", 1)[0]
    video = VIDEO_STREAM.search(section)
    if video is None:
        return None
    size = FRAME_SIZE.search(video.group(1))
    if size is None:
        return None
    width, height = int(size.group(1)), int(size.group(2))
    # Side data (the display matrix) follows its stream's line, before the next stream.
    side = section[video.end():].split("Stream #", 1)[0]
    rotation = ROTATION.search(side)
    if rotation is not None and round(abs(float(rotation.group(1)))) % 180 == 90:
        width, height = height, width
    duration = DURATION.search(section)
    duration_ms = None if duration is None else round(
        (int(duration.group(1)) * 3600 + int(duration.group(2)) * 60 + float(duration.group(3)))
        * 1000)
    return Probe(width=width, height=height, duration_ms=duration_ms,
                 has_audio=AUDIO_STREAM.search(section) is not None)


async def run_ffmpeg(args: list[str], timeout_s: float) -> tuple[int, str]:
    """Run ffmpeg with these arguments; (exit code, stderr). Killed on timeout or cancel."""
    proc = await asyncio.create_subprocess_exec(
        ffmpeg_exe(), "-hide_banner", "-nostdin", *args,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        raise Rejected("timeout", f"ffmpeg ran longer than {timeout_s:g} s") from None
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    return proc.returncode or 0, err.decode(errors="replace")


def _nonempty(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0


def _tail(text: str) -> str:
    return text.strip()[-STDERR_TAIL:]


async def probe(path: Path, timeout_s: float) -> Probe:
    """Read the header and decode one frame: proves the video is readable, not just named so."""
    code, err = await run_ffmpeg(
        ["-i", str(path), "-map", "0:v:0", "-frames:v", "1", "-f", "null", "-"], timeout_s)
    if code != 0:
        if "matches no streams" in err:
            raise Rejected("no_video", "the file has no video stream")
        raise Rejected("corrupt", _tail(err))
    found = parse_probe(err)
    if found is None:
        raise Rejected("no_video", "no video stream with a frame size")
    return found


async def probe_output(path: Path, timeout_s: float) -> Probe:
    """The size and length of a file we wrote (ffmpeg exits 1 with no output named: expected)."""
    _, err = await run_ffmpeg(["-i", str(path)], timeout_s)
    found = parse_probe(err)
    if found is None:
        raise Rejected("ffmpeg_failed", "the rendition has no video stream: " + _tail(err))
    return found


async def poster(source: Path, out: Path, duration_ms: int | None, timeout_s: float) -> None:
    """A JPEG frame (at most MAX_LONG_SIDE): a second in, or earlier in a short clip."""
    at = min(1.0, duration_ms / 3000) if duration_ms else 0.0
    for seek in dict.fromkeys((at, 0.0)):
        code, err = await run_ffmpeg(
            ["-v", "error", "-y", "-ss", f"{seek:.3f}", "-i", str(source), "-map", "0:v:0",
             "-frames:v", "1", "-vf", SCALE_FILTER, "-q:v", "3", "-flags:v", "+bitexact",
             "-f", "image2", str(out)], timeout_s)
        if code != 0:
            raise Rejected("ffmpeg_failed", "poster frame: " + _tail(err))
        if await asyncio.to_thread(_nonempty, out):
            return
        # A seek past the last frame writes nothing: take the first frame instead.
    raise Rejected("ffmpeg_failed", "no frame could be read for the poster")


async def transcode(source: Path, out: Path, timeout_s: float) -> None:
    """H.264/AAC MP4 at most MAX_LONG_SIDE on the long side, metadata dropped, faststart."""
    code, err = await run_ffmpeg(
        ["-v", "error", "-y", "-i", str(source), "-map", "0:v:0", "-map", "0:a:0?",
         "-vf", SCALE_FILTER, "-fpsmax", "60",
         "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p",
         "-profile:v", "high", "-c:a", "aac", "-b:a", "128k", "-ac", "2",
         # Location, creation time, device and chapter names stay in the original only.
         "-map_metadata", "-1", "-map_chapters", "-1", "-sn", "-dn",
         "-movflags", "+faststart", "-max_muxing_queue_size", "1024", "-f", "mp4", str(out)],
        timeout_s)
    if code != 0:
        raise Rejected("ffmpeg_failed", "transcode: " + _tail(err))
