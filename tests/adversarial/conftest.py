"""Fixtures for the adversarial suite: a throttling proxy in front of the session's SeaweedFS."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.adversarial.proxy import ThrottlingProxy

if TYPE_CHECKING:
    from tests.servers_s3 import SeaweedS3


@pytest.fixture
def slow_s3(seaweed: SeaweedS3) -> Iterator[ThrottlingProxy]:
    """SeaweedFS behind a proxy capped at 48 KiB/s towards the server (``set_rate`` to change)."""
    with ThrottlingProxy(("127.0.0.1", seaweed.port), bytes_per_s=48 * 1024) as proxy:
        yield proxy
