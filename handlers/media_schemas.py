"""Wire models of media: command inputs and outputs, with the rules their fields follow."""

from __future__ import annotations

import uuid

from handlers.commands import Input


class MediaIdInput(Input):
    media_id: uuid.UUID
