"""The object-store contract (tests/contracts/object_store.py) against SeaweedFS with
uplink.s3's S3ObjectStore, and against the in-memory twin (uplink.memory_store), side by side."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.contracts.object_store import *  # noqa: F403  (the contract's test functions)
from tests.contracts.object_store import PART, THRESHOLD, twin_store
from uplink.objectstore import ObjectStore, S3Settings


@pytest.fixture(params=["twin", "seaweedfs"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "twin":
        return twin_store()
    from tests.integration.test_s3 import credentials_file
    from uplink.s3 import S3ObjectStore

    server = request.getfixturevalue("seaweed")
    settings = S3Settings(bucket=server.create_bucket(), endpoint_url=server.url,
                          addressing_style="path", multipart_threshold_bytes=THRESHOLD,
                          part_size_bytes=PART, max_attempts=1,
                          credentials_file=credentials_file(tmp_path, server.access_key,
                                                            server.secret_key))
    return S3ObjectStore(settings)
