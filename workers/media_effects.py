"""Slide effects as ffmpeg filters, and the ffmpeg commands that render, stitch and duet.

Everything here is pure: it builds argument lists from validated effect lists
(jobs/slide_effects.py); the slides worker (workers/slides.py) runs them. Inputs are the
media worker's MP4 renditions (H.264/AAC, rotation applied, even sides), so sizes here
are always even.

Text overlays are drawn with Pillow into a transparent PNG the size of the frame and laid
over the video with the overlay filter: the user's text never enters the filter graph (no
escaping to get wrong) and no system font is needed.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from PIL import Image, ImageDraw, ImageFont

from jobs.slide_effects import SPEEDS, Effect, speed_of

# The filter chain of each preset in slide_effects.FILTERS.
VIDEO_FILTERS = {
    "grayscale": "hue=s=0",
    "sepia": "colorchannelmixer=.393:.769:.189:0:.349:.686:.168:0:.272:.534:.131",
    "vignette": "vignette=angle=PI/4",
    "mirror": "hflip",
    "blur": "gblur=sigma=6",
}
# Every composed output (stitch, duet) is brought to one frame rate and audio format.
FPS = 30
SAMPLE_RATE = 44100
# Output encoding: the same H.264/AAC MP4 the media worker makes for uploads.
ENCODE = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p",
          "-c:a", "aac", "-b:a", "128k", "-ac", "2", "-map_metadata", "-1", "-sn", "-dn",
          "-movflags", "+faststart", "-max_muxing_queue_size", "1024", "-f", "mp4"]
NORMAL_AUDIO = f"aresample={SAMPLE_RATE},aformat=sample_fmts=fltp:channel_layouts=stereo"
DuetAudio = Literal["original", "new"]
# A duet's original side is at most this many times as wide as the duet is tall.
DUET_SIDE_RATIO_MAX = 2


def text_overlay_png(text: str, position: str, width: int, height: int) -> bytes:
    """A transparent frame-sized PNG with the text drawn (white, dark outline) where asked."""
    canvas = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    margin = max(2, width // 20)
    size = max(8, height // 10)
    while True:
        font = ImageFont.load_default(size=size)
        stroke = max(1, size // 12)
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font, stroke_width=stroke)
        if right - left <= width - 2 * margin or size <= 8:
            break
        size = max(8, int(size * (width - 2 * margin) / (right - left)))
    x = (width - (right - left)) // 2 - left
    y = {"top": margin, "center": (height - (bottom - top)) // 2,
         "bottom": height - margin - (bottom - top)}[position] - top
    draw.text((x, y), text, font=font, fill=(255, 255, 255, 255), stroke_width=stroke,
              stroke_fill=(0, 0, 0, 255))
    out = io.BytesIO()
    canvas.save(out, "PNG")
    return out.getvalue()


@dataclass(frozen=True)
class Clip:
    """An input video: a local MP4 and what probing it said."""

    path: Path
    width: int
    height: int
    duration_ms: int
    has_audio: bool


@dataclass(frozen=True)
class Plan:
    """An ffmpeg run: its arguments (output included) and what it should produce."""

    args: list[str]
    duration_ms: int
    width: int
    height: int


def _seconds(ms: int) -> str:
    return f"{ms / 1000:.3f}"


def _atempo(speed: float) -> str:
    return "" if speed == 1.0 else f"atempo={speed:g},"


def _effect_graph(effects: list[Effect], video_in: str, text_in: str | None, out: str) -> list[str]:
    """Filter statements taking [video_in] through the effects in order to [out]."""
    statements: list[str] = []
    chain: list[str] = []
    label, step = video_in, 0
    for effect in effects:
        if effect.name in VIDEO_FILTERS:
            chain.append(VIDEO_FILTERS[effect.name])
        elif effect.name in SPEEDS:
            chain.append(f"setpts=PTS/{SPEEDS[effect.name]:g}")
        elif text_in is not None:
            step += 1
            statements.append(f"[{label}]{','.join(chain) or 'null'}[fx{step}]")
            statements.append(f"[fx{step}][{text_in}]overlay=0:0:format=auto[ov{step}]")
            label, chain = f"ov{step}", []
    statements.append(f"[{label}]{','.join([*chain, 'format=yuv420p']) or 'null'}[{out}]")
    return statements


def _inputs(*clips: Clip, text_png: Path | None) -> list[str]:
    args: list[str] = []
    for clip in clips:
        args += ["-i", str(clip.path)]
    if text_png is not None:
        args += ["-i", str(text_png)]
    return args


def _audio_or_silence(clip: Clip, index: int, speed: float, duration_ms: int, out: str) -> str:
    """[out]: the clip's audio at the speed (padded to the duration), or silence that long."""
    if clip.has_audio:
        return (f"[{index}:a]{_atempo(speed)}{NORMAL_AUDIO},"
                f"apad=whole_dur={_seconds(duration_ms)}[{out}]")
    return (f"anullsrc=r={SAMPLE_RATE}:cl=stereo,atrim=duration={_seconds(duration_ms)},"
            f"{NORMAL_AUDIO}[{out}]")


def _run(inputs: list[str], graph: list[str], maps: list[str], duration_ms: int,
         out: Path) -> list[str]:
    return ["-v", "error", "-y", *inputs, "-filter_complex", ";".join(graph), *maps,
            "-t", _seconds(duration_ms), *ENCODE, str(out)]


def render_plan(clip: Clip, effects: list[Effect], out: Path, text_png: Path | None) -> Plan:
    """The clip with its effects applied, in order; audio follows a speed change."""
    speed = speed_of(effects)
    duration = round(clip.duration_ms / speed)
    graph = _effect_graph(effects, "0:v", "1:v" if text_png else None, "v")
    maps = ["-map", "[v]"]
    if clip.has_audio:
        graph.append(f"[0:a]{_atempo(speed)}{NORMAL_AUDIO}[a]")
        maps += ["-map", "[a]"]
    return Plan(_run(_inputs(clip, text_png=text_png), graph, maps, duration, out), duration,
                clip.width, clip.height)


def stitch_plan(original: Clip, start_ms: int, length_ms: int, new: Clip, effects: list[Effect],
                out: Path, text_png: Path | None) -> Plan:
    """Up to length_ms of the original from start_ms, then the new clip (with its effects).

    The output has the new clip's frame size: the original's part is fitted inside it
    (letterboxed), both at FPS, and always has a stereo track (silence where a part had none).
    """
    take = max(0, min(length_ms, original.duration_ms - start_ms))
    speed = speed_of(effects)
    rest = round(new.duration_ms / speed)
    w, h = new.width, new.height
    fit = (f"scale={w}:{h}:force_original_aspect_ratio=decrease,"
           f"pad={w}:{h}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps={FPS},format=yuv420p")
    graph = [f"[0:v]trim=start={_seconds(start_ms)}:duration={_seconds(take)},"
             f"setpts=PTS-STARTPTS,{fit}[av]"]
    if original.has_audio:
        graph.append(f"[0:a]atrim=start={_seconds(start_ms)}:duration={_seconds(take)},"
                     f"asetpts=PTS-STARTPTS,{NORMAL_AUDIO},apad=whole_dur={_seconds(take)}[aa]")
    else:
        graph.append(f"anullsrc=r={SAMPLE_RATE}:cl=stereo,atrim=duration={_seconds(take)},"
                     f"{NORMAL_AUDIO}[aa]")
    graph += _effect_graph(effects, "1:v", "2:v" if text_png else None, "bfx")
    graph.append(f"[bfx]setsar=1,fps={FPS}[bv]")
    graph.append(_audio_or_silence(new, 1, speed, rest, "ba"))
    graph.append("[av][aa][bv][ba]concat=n=2:v=1:a=1[v][a]")
    duration = take + rest
    return Plan(_run(_inputs(original, new, text_png=text_png), graph,
                     ["-map", "[v]", "-map", "[a]"], duration, out), duration, w, h)


def _scaled_width(original: Clip, height: int) -> int:
    return max(2, round(original.width * height / original.height / 2) * 2)


def duet_width(original: Clip, height: int) -> int:
    """The original's side width: the original scaled to the duet's height (even), at most
    DUET_SIDE_RATIO_MAX times that height (renditions bound only the long side, so a thin
    panorama beside a tall clip would otherwise be hundreds of thousands of pixels wide)."""
    return min(_scaled_width(original, height), DUET_SIDE_RATIO_MAX * height)


def duet_plan(original: Clip, new: Clip, audio: DuetAudio, effects: list[Effect], out: Path,
              text_png: Path | None) -> Plan:
    """The original (left) and the new clip (right, with its effects) side by side.

    Both at the new clip's height; the output lasts as long as the new clip (the original
    is cut, or holds its last frame); audio from the chosen side, silence if it has none.
    """
    speed = speed_of(effects)
    duration = round(new.duration_ms / speed)
    h = new.height
    left = duet_width(original, h)
    scale = f"scale={left}:{h}"
    if left < _scaled_width(original, h):
        # Wider than the side allows: fitted inside it, letterboxed.
        scale = (f"scale={left}:{h}:force_original_aspect_ratio=decrease:force_divisible_by=2,"
                 f"pad={left}:{h}:(ow-iw)/2:(oh-ih)/2")
    graph = [f"[0:v]{scale},setsar=1,fps={FPS},format=yuv420p[av]"]
    graph += _effect_graph(effects, "1:v", "2:v" if text_png else None, "bfx")
    graph.append(f"[bfx]setsar=1,fps={FPS}[bv]")
    graph.append("[av][bv]hstack=inputs=2[v]")
    if audio == "original":
        graph.append(_audio_or_silence(original, 0, 1.0, duration, "a"))
    else:
        graph.append(_audio_or_silence(new, 1, speed, duration, "a"))
    return Plan(_run(_inputs(original, new, text_png=text_png), graph,
                     ["-map", "[v]", "-map", "[a]"], duration, out), duration, left + new.width, h)
