"""Fixtures the server tests share."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from tests.server.log_helpers import Collect


@pytest.fixture
def server_log() -> Iterator[Collect]:
    handler = Collect()
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)
