"""Slide effects: the presets a client may name, and the one check of an effect list.

A slide stores its validated effect list; the slides worker (workers/media_effects.py)
turns each preset into ffmpeg filters. Both read the list's shape from here.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any

# The presets without parameters, each one filter chain on the video.
FILTERS = ("grayscale", "sepia", "vignette", "mirror", "blur")
# Speed presets: the factor playback is sped up by.
SPEEDS = {"speed_0_5x": 0.5, "speed_2x": 2.0}
PRESETS = (*FILTERS, *SPEEDS, "text")
POSITIONS = ("top", "center", "bottom")
EFFECTS_MAX = 5
TEXT_MAX_CHARS = 80


class EffectError(ValueError):
    """An effect list that cannot be rendered; field is relative to the list ("0.text")."""

    def __init__(self, field: str, message: str, kind: str = "invalid_effect") -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.kind = kind


@dataclass(frozen=True)
class Effect:
    """One preset as the client named it; text and position only for "text"."""

    name: str
    text: str | None = None
    position: str | None = None

    def to_json(self) -> dict[str, Any]:
        if self.name != "text":
            return {"name": self.name}
        return {"name": self.name, "text": self.text, "position": self.position}


def _bad_text(text: str) -> bool:
    # One line of visible text: control and format characters (newlines, bidi overrides)
    # would break the layout or hide what is drawn.
    return not text.strip() or any(unicodedata.category(c) in ("Cc", "Cf") for c in text)


def parse_effect(index: int, raw: dict[str, Any]) -> Effect:
    name = raw.get("name")
    if name not in PRESETS:
        raise EffectError(f"{index}.name", f"one of {', '.join(PRESETS)}", "unknown_effect")
    extra = set(raw) - ({"name", "text", "position"} if name == "text" else {"name"})
    if extra:
        field = sorted(extra)[0]
        raise EffectError(f"{index}.{field}", f"the {name} effect takes no {field}",
                          "unexpected_parameter")
    if name != "text":
        return Effect(name)
    text, position = raw.get("text"), raw.get("position", "bottom")
    if not isinstance(text, str) or _bad_text(text):
        raise EffectError(f"{index}.text", "the text effect needs a text: one line, not blank",
                          "missing_text")
    if len(text) > TEXT_MAX_CHARS:
        raise EffectError(f"{index}.text", f"at most {TEXT_MAX_CHARS} characters", "too_long")
    if position not in POSITIONS:
        raise EffectError(f"{index}.position", f"one of {', '.join(POSITIONS)}", "unknown_position")
    return Effect(name, text.strip(), position)


def parse_effects(raw: list[dict[str, Any]]) -> list[Effect]:
    """Validate an effect list: known presets, their parameters, at most one speed and one text."""
    if len(raw) > EFFECTS_MAX:
        raise EffectError("", f"at most {EFFECTS_MAX} effects", "too_many_effects")
    effects = [parse_effect(i, item) for i, item in enumerate(raw)]
    seen: set[str] = set()
    for index, effect in enumerate(effects):
        group = "speed" if effect.name in SPEEDS else effect.name
        if group in seen:
            raise EffectError(f"{index}.name", f"only one {group} effect per slide", "duplicate_effect")
        seen.add(group)
    return effects


def speed_of(effects: list[Effect]) -> float:
    return next((SPEEDS[e.name] for e in effects if e.name in SPEEDS), 1.0)


def text_of(effects: list[Effect]) -> Effect | None:
    return next((e for e in effects if e.name == "text"), None)
