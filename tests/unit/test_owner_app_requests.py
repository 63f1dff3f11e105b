"""The owner app's Requests page API: listed with the clips in window, decisions, the gate."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from agent.owner import requests as owner_requests
from agent.owner.app.security import Guard
from agent.owner.app.server import build
from agent.owner.app.service import OwnerService
from agent.owner.app.settings import BucketOptions
from tests.owner_app_fixtures import Bucketful
from uplink.memory_store import MemoryObjectStore

PORT = 8766
BASE = f"http://127.0.0.1:{PORT}"


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, str,
                                                                          list[Any]]]:
    b = Bucketful.create(tmp_path / "owner", MemoryObjectStore())
    b.add_clip("c0001", b"video")
    calls: list[Any] = []

    def fake_list(ring: Any, device: Any, broker: Any, manifests: Any,
                  timeout: float = 1.0) -> tuple[list[Any], dict[str, int]]:
        calls.append(("list", sorted(m.clip_id for _, m in manifests or [])))
        return [], {"rate_limited": 4}

    def fake_approve(*args: Any, **kwargs: Any) -> Any:
        calls.append(("approve", args[5:8]))
        raise owner_requests.DoorwardError("no request r-1 on the device")

    monkeypatch.setattr(owner_requests, "list_requests", fake_list)
    monkeypatch.setattr(owner_requests, "approve", fake_approve)
    service = OwnerService(b.ring, bucket=BucketOptions("b"), store=b.store, timeout=1.0)
    guard = Guard(PORT)
    app, _ = build(service, guard, live=False)
    client = TestClient(app.asgi, base_url=BASE, follow_redirects=False)
    assert client.get(f"/?token={guard.token}").status_code == 303
    yield client, f"/api/devices/{b.device_id}", calls
    service.close()


def test_the_list_passes_the_verified_clips_and_shows_the_counts(world: Any) -> None:
    client, base, calls = world
    r = client.get(base + "/requests")
    assert r.status_code == 200, r.text
    assert r.json() == {"requests": [], "counted": {"rate_limited": 4}, "clips_checked": True}
    assert calls == [("list", ["c0001"])]


def test_a_decision_needs_the_csrf_header_and_says_why_it_failed(world: Any) -> None:
    client, base, calls = world
    r = client.post(base + "/requests/r-1/approve", json={"clips": ["c0001"], "days": 2})
    assert r.status_code in (401, 403)  # no CSRF header: refused before anything runs
    assert calls == []


def test_bad_bodies_are_refused(world: Any) -> None:
    client, base, _calls = world
    page = client.get("/").text
    csrf = page.split('name="csrf" content="', 1)[1].split('"', 1)[0]
    r = client.post(base + "/requests/r-1/approve", json={"clips": "c0001"},
                    headers={"X-Doorward-CSRF": csrf})
    assert r.status_code == 400
    r = client.post(base + "/requests/r-1/approve", json={"clips": None, "days": 2},
                    headers={"X-Doorward-CSRF": csrf})
    assert r.status_code == 502 and "no request r-1" in r.json()["error"]
    assert "Requests" in page and 'id="page-requests"' in page
