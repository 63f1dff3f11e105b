"""Object keys with their ETags, so a reader can skip objects it already holds unchanged.

The owner's timeline lists every manifest of a device; with ETags (S3's hash of each object,
returned by the listing itself) a manifest fetched before and listed with the same ETag need not be
fetched again. The reader still verifies every token it uses: an ETag only says the bytes are the
ones it cached, not that they are good.

Usage::

    for key, etag in list_with_etags(store, prefix):   # store: uplink.s3.S3ObjectStore
        ...
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from uplink.s3 import S3ObjectStore


def _lister(store: S3ObjectStore, kwargs: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    return lambda: dict(store.client.list_objects_v2(**kwargs))


def list_with_etags(store: S3ObjectStore, prefix: str) -> Iterator[tuple[str, str]]:
    """Every ``(key, etag)`` under ``prefix`` in key order, one page (1,000 keys) per request,
    with the store's retries and error translation (S3Error)."""
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"Bucket": store.settings.bucket, "Prefix": prefix}
        if token:
            kwargs["ContinuationToken"] = token
        page = store.call(f"LIST {prefix}", _lister(store, kwargs))
        for item in page.get("Contents", []):
            yield str(item["Key"]), str(item.get("ETag", "")).strip('"')
        token = page.get("NextContinuationToken")
        if not page.get("IsTruncated") or not token:
            return
