"""The owner's web app: its gate (token, cookie, CSRF, no CORS, no-store), and its routes over the
real owner client with an in-memory bucket (uplink.memory_store) and real keys."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")
with warnings.catch_warnings():  # starlette deprecates httpx for its TestClient: still works
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from agent.errors import DoorwardError
from agent.owner.app import service as service_mod
from agent.owner.app.security import COOKIE, Guard
from agent.owner.app.server import build, parse_range
from agent.owner.app.service import OwnerService, QrLabel, members_from
from agent.owner.app.settings import BucketOptions
from tests.owner_app_fixtures import Bucketful
from uplink.age import CHUNK_SIZE
from uplink.memory_store import MemoryObjectStore

PORT = 8765
BASE = f"http://127.0.0.1:{PORT}"
VIDEO = os.urandom(3 * CHUNK_SIZE + 1234)  # stands for an MP4: the bytes must come back exact


@pytest.fixture
def bucket(tmp_path: Path) -> Bucketful:
    b = Bucketful.create(tmp_path / "owner", MemoryObjectStore())
    for i in range(1, 8):
        b.add_clip(f"c{i:04d}", VIDEO if i != 3 else None)
    return b


@pytest.fixture
def guard() -> Guard:
    return Guard(PORT)


@pytest.fixture
def service(bucket: Bucketful) -> Iterator[OwnerService]:
    s = OwnerService(bucket.ring, bucket=BucketOptions("b"), store=bucket.store, timeout=1.0)
    yield s
    s.close()


@pytest.fixture
def anon(service: OwnerService, guard: Guard) -> TestClient:
    app, _ = build(service, guard, live=False)
    return TestClient(app.asgi, base_url=BASE, follow_redirects=False)


@pytest.fixture
def client(anon: TestClient, guard: Guard) -> TestClient:
    r = anon.get(f"/?token={guard.token}")
    assert r.status_code == 303
    return anon


def dev(b: Bucketful) -> str:
    return f"/api/devices/{b.device_id}"


# --- the gate -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/static/app.js", "/api/me", "/api/now",
                                  "/api/devices/x/clips", "/api/devices/x/clips/c/video"])
def test_every_route_is_401_without_the_cookie(anon: TestClient, path: str) -> None:
    r = anon.get(path)
    assert r.status_code == 401
    assert r.headers["cache-control"] == "no-store"


def test_token_sets_an_httponly_strict_cookie_and_leaves_the_address(anon: TestClient,
                                                                       guard: Guard) -> None:
    r = anon.get(f"/?token={guard.token}")
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}={guard.session};")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert guard.token not in cookie  # the printed token is not the session
    page = anon.get("/")
    assert page.status_code == 200 and guard.csrf in page.text


def test_wrong_token_or_forged_cookie_is_401(anon: TestClient, guard: Guard) -> None:
    assert anon.get("/?token=" + "x" * 43).status_code == 401
    anon.cookies.set(COOKIE, guard.token)  # the token is not a session
    assert anon.get("/api/me").status_code == 401


def test_the_server_listens_on_loopback_only() -> None:
    from agent.owner.app.server import _listen

    sock = _listen(0)
    try:
        assert sock.getsockname()[0] == "127.0.0.1"
    finally:
        sock.close()


def test_other_hosts_are_refused_against_dns_rebinding(client: TestClient) -> None:
    r = client.get("/api/me", headers={"Host": f"evil.example:{PORT}"})
    assert r.status_code == 400


def test_state_changes_need_the_csrf_token(client: TestClient, guard: Guard,
                                           bucket: Bucketful,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(service_mod, "command",
                        lambda ring, d, b, cmd, args, timeout: sent.append((cmd, args)) or
                        {"ok": True, "result": {"revoked": ["clips"], "grants": []}})
    url = f"{dev(bucket)}/consent/revoke"
    assert client.post(url, json={"scopes": None}).status_code == 403
    assert client.post(url, json={"scopes": None},
                       headers={"X-Doorward-CSRF": "nope"}).status_code == 403
    assert client.post(url, json={"scopes": None}, headers={
        "X-Doorward-CSRF": guard.csrf, "Origin": "http://evil.example"}).status_code == 403
    assert sent == []
    r = client.post(url, json={"scopes": None}, headers={"X-Doorward-CSRF": guard.csrf,
                                                          "Origin": BASE})
    assert r.status_code == 200 and r.json()["revoked"] == ["clips"]
    assert sent == [("consent.revoke", {"scopes": None})]


def test_no_cors_ever(client: TestClient) -> None:
    for r in (client.get("/api/me", headers={"Origin": "http://evil.example"}),
              client.options("/api/me", headers={"Origin": "http://evil.example",
                                                 "Access-Control-Request-Method": "POST"})):
        assert not [h for h in r.headers if h.lower().startswith("access-control-")]


def test_security_headers_on_pages_json_and_media(client: TestClient, bucket: Bucketful) -> None:
    for path in ("/", "/api/me", f"{dev(bucket)}/clips/c0001/video",
                 f"{dev(bucket)}/clips/c0001/snapshot"):
        r = client.get(path)
        assert r.status_code == 200, path
        assert r.headers["cache-control"] == "no-store"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert "default-src 'self'" in r.headers["content-security-policy"]
        assert r.headers["x-frame-options"] == "DENY"


# --- clips ----------------------------------------------------------------------------------------


def test_timeline_is_paged_newest_first_and_verified(client: TestClient, bucket: Bucketful) -> None:
    doc = client.get(f"{dev(bucket)}/clips?page=0").json()
    assert doc["total"] == 7 and doc["chain"]["ok"] and doc["unverified"] == []
    assert [c["clip_id"] for c in doc["clips"]][:3] == ["c0007", "c0006", "c0005"]
    assert doc["clips"][0]["duration_s"] == 4.0  # sealed times opened with the owner's identity
    assert [c["video"] for c in doc["clips"] if c["clip_id"] == "c0003"] == [False]


def test_tampered_manifest_is_listed_as_failing_and_not_played(client: TestClient,
                                                                bucket: Bucketful) -> None:
    key = bucket.keys["c0005"]
    token = bucket.store.objects[key]  # type: ignore[attr-defined]
    bucket.store.objects[key] = token[:-6] + (b"AAAAAA" if token[-6:] != b"AAAAAA"  # type: ignore[attr-defined]
                                              else b"BBBBBB")
    doc = client.get(f"{dev(bucket)}/clips?refresh=1").json()
    assert doc["unverified"] == [key] and not doc["chain"]["ok"]
    assert "c0005" not in [c["clip_id"] for c in doc["clips"]]
    r = client.get(f"{dev(bucket)}/clips/c0005/video")
    assert r.status_code == 404 and "no verified manifest" in r.json()["error"]


def test_altered_sealed_clip_is_refused_before_any_plaintext(client: TestClient,
                                                              bucket: Bucketful) -> None:
    key = bucket.keys["c0002"].replace(".manifest.jws", ".mp4.age")
    data = bytearray(bucket.store.objects[key])  # type: ignore[attr-defined]
    data[-100] ^= 1
    bucket.store.objects[key] = bytes(data)  # type: ignore[attr-defined]
    r = client.get(f"{dev(bucket)}/clips/c0002/video")
    assert r.status_code == 502 and "altered" in r.json()["error"]


def test_video_serves_ranges_decrypted(client: TestClient, bucket: Bucketful) -> None:
    url = f"{dev(bucket)}/clips/c0001/video"
    whole = client.get(url)
    assert whole.status_code == 200 and whole.content == VIDEO
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["content-type"] == "video/mp4"
    a, b = CHUNK_SIZE - 10, 2 * CHUNK_SIZE + 10
    part = client.get(url, headers={"Range": f"bytes={a}-{b}"})
    assert part.status_code == 206 and part.content == VIDEO[a:b + 1]
    assert part.headers["content-range"] == f"bytes {a}-{b}/{len(VIDEO)}"
    tail = client.get(url, headers={"Range": "bytes=-100"})
    assert tail.status_code == 206 and tail.content == VIDEO[-100:]
    bad = client.get(url, headers={"Range": f"bytes={len(VIDEO)}-"})
    assert bad.status_code == 416 and bad.headers["content-range"] == f"bytes */{len(VIDEO)}"
    dl = client.get(url + "?download=1", headers={"Range": "bytes=0-9"})
    assert "attachment" in dl.headers["content-disposition"] and dl.content == VIDEO[:10]


def test_plaintext_is_never_written_to_disk(client: TestClient, bucket: Bucketful) -> None:
    writes: list[str] = []
    active = [True]

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if active[0] and event == "open" and isinstance(args[1], str) and \
                any(c in args[1] for c in "wax+"):
            writes.append(str(args[0]))

    sys.addaudithook(hook)  # audit hooks cannot be removed: this one goes quiet after the test
    try:
        assert client.get(f"{dev(bucket)}/clips/c0004/video").content == VIDEO
        assert client.get(f"{dev(bucket)}/clips/c0004/snapshot").content == b"\xff\xd8jpeg"
        assert client.get(f"{dev(bucket)}/clips/c0004/video",
                          headers={"Range": "bytes=100-70000"}).status_code == 206
    finally:
        active[0] = False
    assert writes == []


def test_snapshot_and_export(client: TestClient, bucket: Bucketful) -> None:
    assert client.get(f"{dev(bucket)}/clips/c0003/snapshot").content == b"\xff\xd8jpeg"
    r = client.get(f"{dev(bucket)}/clips/c0001/export")
    key = bucket.keys["c0001"].replace(".manifest.jws", ".mp4.age")
    assert r.content == bucket.store.objects[key]  # type: ignore[attr-defined]
    assert r.content.startswith(b"age-encryption.org/v1")


def test_bucket_unreachable_says_what_to_do(bucket: Bucketful, guard: Guard) -> None:
    class Down(MemoryObjectStore):
        def list(self, prefix: str) -> Any:
            from uplink.s3_errors import S3Error
            raise S3Error("could not connect to the endpoint URL http://127.0.0.1:1")

    s = OwnerService(bucket.ring, bucket=BucketOptions("b"), store=Down())
    app, _ = build(s, guard, live=False)
    c = TestClient(app.asgi, base_url=BASE, follow_redirects=False)
    c.get(f"/?token={guard.token}")
    r = c.get(f"{dev(bucket)}/clips")
    assert r.status_code == 502 and "could not connect" in r.json()["error"]
    assert "Check that the store" in r.json()["error"]  # and what to check
    s.close()


# --- commands -------------------------------------------------------------------------------------


def test_grant_signs_what_the_page_asked(client: TestClient, guard: Guard, bucket: Bucketful,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(service_mod, "command",
                        lambda ring, d, b, cmd, args, timeout: sent.append((cmd, args)) or
                        {"ok": True, "result": {"grants": [{"scope": "clips"}]}})
    h = {"X-Doorward-CSRF": guard.csrf}
    r = client.post(f"{dev(bucket)}/consent/grant", headers=h,
                    json={"scopes": ["clips", "events"], "days": 7})
    assert r.status_code == 200
    r = client.post(f"{dev(bucket)}/consent/grant", headers=h,
                    json={"scopes": ["clips"], "days": 7, "until_revoked": True})
    assert sent == [("consent.grant", {"scopes": ["clips", "events"], "days": 7,
                                       "until_revoked": False}),
                    ("consent.grant", {"scopes": ["clips"], "days": None, "until_revoked": True})]
    bad = client.post(f"{dev(bucket)}/consent/grant", headers=h, json={"scopes": ["everything"]})
    assert bad.status_code == 502 and "scopes must be" in bad.json()["error"]


def test_members_add_and_remove_are_signed_commands(client: TestClient, guard: Guard,
                                                    bucket: Bucketful,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(service_mod, "command",
                        lambda ring, d, b, cmd, args, timeout: sent.append((cmd, args)) or
                        {"ok": True, "result": {"key_id": "k-new"}})
    h = {"X-Doorward-CSRF": guard.csrf}
    r = client.post(f"{dev(bucket)}/members", headers=h,
                    json={"public_key": " pk ", "recipient": "age1x", "role": "viewer"})
    assert r.status_code == 200 and r.json() == {"key_id": "k-new"}
    assert client.post(f"{dev(bucket)}/members", headers=h,
                       json={"public_key": "pk", "recipient": "r", "role": "root"}
                       ).status_code == 502
    client.post(f"{dev(bucket)}/members/remove", headers=h, json={"key_id": "k-new"})
    assert sent == [("owner.add", {"public_key": "pk", "recipient": "age1x", "role": "viewer"}),
                    ("owner.remove", {"key_id": "k-new"})]


def test_a_refusal_comes_back_with_the_devices_reason(client: TestClient, guard: Guard,
                                                       bucket: Bucketful,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.owner import client as client_mod

    monkeypatch.setattr(client_mod, "send_command", lambda *a, **k: {
        "ok": False, "reason": "expired", "detail": "exp in the past", "iat": 1000,
        "received_at": 1400.0, "result": {}})
    r = client.post(f"{dev(bucket)}/consent/grant", headers={"X-Doorward-CSRF": guard.csrf},
                    json={"scopes": ["clips"], "days": 1})
    assert r.status_code == 502
    assert "refused consent.grant: expired" in r.json()["error"]
    assert "6 min 40 s behind yours" in r.json()["error"]


def test_broker_unreachable_is_said_plainly(client: TestClient, bucket: Bucketful) -> None:
    r = client.get(f"{dev(bucket)}/consent")  # the fixture's broker is mqtt://127.0.0.1:1
    assert r.status_code == 502 and "cannot reach the broker" in r.json()["error"]


def test_members_follow_the_ledger() -> None:
    entries = [{"kind": "pairing", "ts": 1, "data": {"owner": "k-a", "recipient": "age1a"}},
               {"kind": "owner-added", "ts": 2, "data": {"key_id": "k-b", "role": "viewer"}},
               {"kind": "owner-added", "ts": 3, "data": {"key_id": "k-c", "role": "owner"}},
               {"kind": "owner-removed", "ts": 4, "data": {"key_id": "k-b"}}]
    assert [(m["key_id"], m["role"]) for m in members_from(entries)] == [("k-a", "owner"),
                                                                          ("k-c", "owner")]
    assert members_from([*entries, {"kind": "factory-reset", "ts": 5, "data": {}}]) == []
    signed = [{"kind": "consent-grant", "ts": 1, "data": {"by": "k-p", "scopes": ["clips"]}},
              {"kind": "owner-removed", "ts": 2, "data": {"by": "k-q", "key_id": "k-p"}},
              {"kind": "consent-revoke", "ts": 3, "data": {"by": "k-p", "scopes": None}}]
    assert [(m["key_id"], m["role"]) for m in members_from(signed)] == [("k-q", None)]


def test_qr_text_parses_and_nonsense_says_what_to_paste() -> None:
    q = QrLabel.parse("doorward:dw-abc:1a2b-3c4d:ABCD-EFGH\n")
    assert (q.device_id, q.fingerprint, q.setup_code) == ("dw-abc", "1a2b-3c4d", "ABCD-EFGH")
    with pytest.raises(DoorwardError, match="QR text"):
        QrLabel.parse("https://example.com")


def test_pair_route_needs_what_the_label_gives(client: TestClient, guard: Guard) -> None:
    h = {"X-Doorward-CSRF": guard.csrf}
    assert "broker" in client.post("/api/pair", headers=h, json={}).json()["error"]
    r = client.post("/api/pair", headers=h, json={"broker": "mqtt://127.0.0.1:1"})
    assert r.status_code == 400 and "setup code" in r.json()["error"]


# --- pieces ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("header", "expected"), [
    (None, None), ("bytes=0-9", (0, 10)), ("bytes=5-", (5, 100)), ("bytes=-10", (90, 100)),
    ("bytes=90-200", (90, 100)), ("bytes=100-", "unsatisfiable"), ("bytes=0-1,5-6", None),
    ("items=0-1", None), ("bytes=-0", "unsatisfiable"), ("bytes=9-3", "unsatisfiable")])
def test_parse_range(header: str | None, expected: object) -> None:
    assert parse_range(header, 100) == expected


def test_bucket_flags_are_remembered_in_the_owner_dir(tmp_path: Path) -> None:
    assert BucketOptions.remembered(tmp_path, {"bucket": None}) is None
    first = BucketOptions.remembered(tmp_path, {"bucket": "clips", "endpoint_url": "http://s3",
                                                "prefix": None})
    assert first == BucketOptions("clips", "http://s3")
    assert BucketOptions.remembered(tmp_path, {}) == first
    moved = BucketOptions.remembered(tmp_path, {"region": "eu-west-1"})
    assert moved == BucketOptions("clips", "http://s3", region="eu-west-1")
    with pytest.raises(DoorwardError, match="--bucket"):
        BucketOptions.remembered(tmp_path / "x", {"region": "r"})


def test_cli_parses_the_app_command() -> None:
    from agent.cli import build_parser

    args = build_parser().parse_args(["owner", "--owner-dir", "/o", "app", "--port", "8123",
                                      "--no-browser", "--bucket", "b", "--endpoint-url", "http://e",
                                      "--addressing-style", "path"])
    assert (args.owner_command, args.port, args.no_browser, args.bucket, args.prefix) == \
        ("app", 8123, True, "b", None)
