"""Wire models of feeds: command inputs and outputs, with the rules their fields follow."""

from __future__ import annotations

import re
import uuid
from typing import Literal

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from handlers.pagination import PageInput

# A tag as item.create stores it (handlers/items.py TAG): word characters, lower-cased.
TAG = re.compile(r"\w{1,64}")


class HomeInput(PageInput):
    """A page of the home feed."""


class UserItemsInput(PageInput):
    user_id: uuid.UUID
    kind: Literal["post", "notice", "share", "slide"] | None = Field(
        default=None, description="only items of this kind (default: all four)")


class CliqueItemsInput(PageInput):
    clique_id: uuid.UUID


class CommentsInput(PageInput):
    item_id: uuid.UUID


class TagInput(PageInput):
    tag: str = Field(max_length=65, description="with or without '#', any case")

    @field_validator("tag")
    @classmethod
    def _normalise(cls, value: str) -> str:
        tag = value.removeprefix("#").lower()
        if not TAG.fullmatch(tag):
            raise PydanticCustomError(
                "tag_invalid", "a tag is 1 to 64 letters, digits or underscores, after an optional '#'")
        return tag


class SavedInput(PageInput):
    """A page of your saved items."""
