"""Effect presets, stitch and duet commands on real tiny videos, and the render progress readings."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from jobs import slide_effects
from tests.media_files import make_video
from workers import media_effects as fx
from workers.media_images import Rejected
from workers.media_video import Probe, probe_output, run_ffmpeg
from workers.slides import Throttle, percent_of, run_with_progress


def clip(work: Path, name: str, *, size: str = "160x120", seconds: float = 2.0,
         audio: str | None = "tone") -> fx.Clip:
    path = work / f"{name}.mp4"
    path.write_bytes(make_video(work, size=size, seconds=seconds, audio=audio))
    width, height = (int(n) for n in size.split("x"))
    return fx.Clip(path, width, height, round(seconds * 1000), audio is not None)


async def rendered(plan: fx.Plan) -> Probe:
    code, err = await run_ffmpeg(plan.args, 120)
    assert code == 0, err
    return await probe_output(Path(plan.args[-1]), 60)


# -- validation -----------------------------------------------------------------------------


def test_every_preset_parses_and_round_trips() -> None:
    raw: list[dict[str, Any]] = [{"name": "grayscale"}, {"name": "mirror"}, {"name": "speed_0_5x"},
                                 {"name": "text", "text": "  hi there  "}, {"name": "vignette"}]
    effects = slide_effects.parse_effects(raw)
    assert [e.to_json() for e in effects][3] == {"name": "text", "text": "hi there",
                                                 "position": "bottom"}
    assert slide_effects.parse_effects([e.to_json() for e in effects]) == effects
    assert slide_effects.speed_of(effects) == 0.5 and slide_effects.text_of(effects) == effects[3]
    assert slide_effects.speed_of([]) == 1.0 and slide_effects.text_of([]) is None
    assert set(slide_effects.PRESETS) == {"grayscale", "sepia", "vignette", "mirror", "blur", "speed_0_5x",
                               "speed_2x", "text"}


@pytest.mark.parametrize(("raw", "field", "kind"), [
    ([{"name": "sparkle"}], "0.name", "unknown_effect"),
    ([{}], "0.name", "unknown_effect"),
    ([{"name": "blur", "sigma": 3}], "0.sigma", "unexpected_parameter"),
    ([{"name": "grayscale", "position": "top"}], "0.position", "unexpected_parameter"),
    ([{"name": "text"}], "0.text", "missing_text"),
    ([{"name": "text", "text": 5}], "0.text", "missing_text"),
    ([{"name": "text", "text": "a\u202eb"}], "0.text", "missing_text"),
    ([{"name": "text", "text": "x" * 81}], "0.text", "too_long"),
    ([{"name": "text", "text": "x", "position": "middle"}], "0.position", "unknown_position"),
    ([{"name": "speed_2x"}, {"name": "speed_2x"}], "1.name", "duplicate_effect"),
    ([{"name": "text", "text": "a"}, {"name": "text", "text": "b"}], "1.name", "duplicate_effect"),
    ([{"name": n} for n in ("grayscale", "sepia", "vignette", "mirror", "blur", "speed_2x")],
     "", "too_many_effects"),
])
def test_bad_effect_lists_name_the_field(raw: list[dict[str, Any]], field: str, kind: str) -> None:
    with pytest.raises(slide_effects.EffectError) as caught:
        slide_effects.parse_effects(raw)
    assert (caught.value.field, caught.value.kind) == (field, kind)


def test_the_text_overlay_is_drawn_where_asked_and_fits_the_frame() -> None:
    for position, rows in (("top", range(0, 40)), ("center", range(40, 80)),
                           ("bottom", range(80, 120))):
        img = Image.open(io.BytesIO(fx.text_overlay_png("A long caption that must fit", position,
                                                        160, 120)))
        assert img.size == (160, 120) and img.mode == "RGBA"
        alpha = img.getchannel("A")
        box = alpha.getbbox()
        assert box is not None and box[0] >= 0 and box[2] <= 160
        assert box[1] in rows and box[3] - 1 in rows, (position, box)


# -- rendering ------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "factor"), [
    ("grayscale", 1.0), ("sepia", 1.0), ("vignette", 1.0), ("mirror", 1.0), ("blur", 1.0),
    ("speed_0_5x", 2.0), ("speed_2x", 0.5), ("text", 1.0)])
async def test_each_preset_renders_a_playable_video(tmp_path: Path, name: str, factor: float) -> None:
    source = clip(tmp_path, "in")
    raw: dict[str, Any] = {"name": name, "text": "Hi"} if name == "text" else {"name": name}
    effects = slide_effects.parse_effects([raw])
    png = None
    if name == "text":
        png = tmp_path / "text.png"
        png.write_bytes(fx.text_overlay_png("Hi", "bottom", source.width, source.height))
    plan = fx.render_plan(source, effects, tmp_path / "out.mp4", png)
    assert plan.duration_ms == round(2000 * factor)
    probe = await rendered(plan)
    assert (probe.width, probe.height, probe.has_audio) == (160, 120, True)
    assert probe.duration_ms is not None and abs(probe.duration_ms - 2000 * factor) <= 200


async def test_effects_combine_in_one_graph_and_silent_inputs_stay_silent(tmp_path: Path) -> None:
    source = clip(tmp_path, "in", audio=None)
    png = tmp_path / "text.png"
    png.write_bytes(fx.text_overlay_png("Combined", "center", 160, 120))
    effects = slide_effects.parse_effects([{"name": "sepia"}, {"name": "text", "text": "Combined"},
                                {"name": "mirror"}, {"name": "speed_2x"}, {"name": "blur"}])
    plan = fx.render_plan(source, effects, tmp_path / "out.mp4", png)
    graph = plan.args[plan.args.index("-filter_complex") + 1]
    assert "overlay" in graph and "hflip" in graph and "setpts=PTS/2" in graph
    probe = await rendered(plan)
    assert probe.has_audio is False and abs((probe.duration_ms or 0) - 1000) <= 200


async def test_stitch_joins_the_originals_part_and_the_new_clip(tmp_path: Path) -> None:
    original = clip(tmp_path, "a", size="160x120", seconds=3, audio=None)
    new = clip(tmp_path, "b", size="90x160", seconds=2)
    plan = fx.stitch_plan(original, 1000, 5000, new, [], tmp_path / "out.mp4", None)
    # At most what is left of the original after start (2 s), then the new clip (2 s).
    assert (plan.duration_ms, plan.width, plan.height) == (4000, 90, 160)
    probe = await rendered(plan)
    assert (probe.width, probe.height, probe.has_audio) == (90, 160, True)
    assert abs((probe.duration_ms or 0) - 4000) <= 250
    short = fx.stitch_plan(original, 0, 500, new, slide_effects.parse_effects([{"name": "speed_2x"}]),
                           tmp_path / "short.mp4", None)
    assert short.duration_ms == 500 + 1000
    assert abs(((await rendered(short)).duration_ms or 0) - 1500) <= 250


async def test_duet_stacks_at_the_new_clips_height_for_its_length(tmp_path: Path) -> None:
    original = clip(tmp_path, "a", size="160x120", seconds=1, audio=None)
    new = clip(tmp_path, "b", size="120x90", seconds=2, audio="silent")
    assert fx.duet_width(original, 90) == 120
    plan = fx.duet_plan(original, new, "original", [], tmp_path / "out.mp4", None)
    assert (plan.duration_ms, plan.width, plan.height) == (2000, 240, 90)
    probe = await rendered(plan)
    # The 1 s original holds its last frame until the 2 s new clip ends; its missing sound
    # is silence.
    assert (probe.width, probe.height, probe.has_audio) == (240, 90, True)
    assert abs((probe.duration_ms or 0) - 2000) <= 250
    odd = fx.Clip(original.path, 100, 70, 1000, False)
    assert fx.duet_width(odd, 90) == 128  # 100 * 90 / 70 = 128.6, kept even


async def test_a_duet_with_a_panorama_original_stays_bounded(tmp_path: Path) -> None:
    # Renditions keep only the long side under 1,280 px: a 1280x2 original next to a
    # 2x1280 clip would otherwise be scaled to 819,200 x 1,280 pixels.
    assert fx.duet_width(fx.Clip(tmp_path / "x.mp4", 1280, 2, 1000, False), 1280) == 2560
    original = clip(tmp_path, "wide", size="400x20", seconds=1, audio=None)
    new = clip(tmp_path, "tall", size="20x100", seconds=1, audio=None)
    # Scaled to the new clip's height the original would be 2,000 px wide; its side is
    # held to twice the height (200) and the original letterboxed inside it.
    assert fx.duet_width(original, 100) == 200
    plan = fx.duet_plan(original, new, "original", [], tmp_path / "out.mp4", None)
    assert (plan.width, plan.height) == (220, 100)
    probe = await rendered(plan)
    assert (probe.width, probe.height) == (220, 100)


# -- progress -------------------------------------------------------------------------------


def test_progress_lines_become_percents() -> None:
    assert percent_of("out_time_us=1000000\n", 4000) == 25
    assert percent_of("out_time_us=9000000", 4000) == 99
    assert percent_of("out_time_us=N/A", 4000) is None
    assert percent_of("out_time_us=-9223372036854775807", 4000) is None
    assert percent_of("frame=12", 4000) is None
    assert percent_of("out_time_us=5", 0) is None


def test_the_throttle_lets_through_5_point_steps_at_most_every_half_second() -> None:
    throttle = Throttle(last_at=0.0)
    assert [throttle.due(p, t) for p, t in [(3, 1.0), (5, 1.0), (9, 1.2), (11, 1.2),
                                             (30, 1.4), (31, 1.6), (35, 1.7)]] == [
        False, True, False, False, False, True, False]


async def test_a_render_reports_progress_and_failures_are_rejected(tmp_path: Path) -> None:
    source = clip(tmp_path, "in", seconds=3)
    plan = fx.render_plan(source, slide_effects.parse_effects([{"name": "speed_0_5x"}]), tmp_path / "o.mp4",
                          None)
    seen: list[int] = []

    async def report(percent: int) -> None:
        seen.append(percent)

    await run_with_progress(plan.args, 120, plan.duration_ms, report)
    assert seen and seen == sorted(seen) and seen[-1] <= 99 and seen[-1] >= 50
    with pytest.raises(Rejected) as failed:
        await run_with_progress(["-v", "error", "-i", str(tmp_path / "missing.mp4"), "-f", "null",
                                 "-"], 60, 1000, report)
    assert failed.value.reason == "ffmpeg_failed"
    with pytest.raises(Rejected) as slow:
        await run_with_progress(plan.args, 0.001, plan.duration_ms, report)
    assert slow.value.reason == "timeout"
