"""Build, sign and send a footage request; remember it for ``fetch``.

The request goes to ``doorward/<device>/request`` on the device's broker; the owner's sealed
answer comes back, retained, on ``doorward/<device>/answer/<request id>`` (topic names carry no
personal data: the request id is random). Usage::

    rid = send_request(me, RequestOptions(device="dw-...", broker="mqtt://...", start=..., end=...,
                       reason="...", case=None))
"""

from __future__ import annotations

import json
import queue
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agent.errors import DoorwardError
from agent.requester.identity import RequesterIdentity
from uplink import (
    FootageRequest,
    InboundMessage,
    MqttSettings,
    UplinkError,
    device_topic,
    is_device_id,
    iso_utc_z,
    sign_request,
)

REQUESTS = "requests"


def request_topic(device_id: str) -> str:
    return device_topic(device_id, "request")


def answer_topic(device_id: str, request_id: str) -> str:
    return device_topic(device_id, "answer", request_id)


@dataclass(frozen=True)
class RequestOptions:
    device: str
    broker: str
    start: str
    end: str
    reason: str
    case: str | None = None


def _utc(text: str, flag: str) -> str:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise DoorwardError(f"{flag} {text!r} is not an ISO 8601 time "
                            "(e.g. 2026-12-03T18:00:00Z)") from None
    if when.tzinfo is None:
        raise DoorwardError(f"{flag} {text!r} has no time zone: add Z or +HH:MM")
    return iso_utc_z(when.timestamp())


def build_request(me: RequesterIdentity, opts: RequestOptions, *,
                  now: float | None = None) -> tuple[FootageRequest, str]:
    """The request and its signed token (DoorwardError naming the flag that is wrong)."""
    if not is_device_id(opts.device):
        raise DoorwardError(f"--device {opts.device!r} is not a device id (dw-...)")
    try:
        req = FootageRequest(
            id="r-" + uuid.uuid4().hex[:20], device_id=opts.device, requester=me.key_id,
            public_key=me.public_key, name=me.name, recipient=me.recipient,
            start=_utc(opts.start, "--from"), end=_utc(opts.end, "--to"), reason=opts.reason,
            case=opts.case, issued_at=int(time.time() if now is None else now))
        return req, sign_request(req, me.key)
    except UplinkError as exc:
        raise DoorwardError(f"cannot make the request: {exc}") from exc


def remember(me: RequesterIdentity, req: FootageRequest, token: str, broker: str) -> None:
    d = me.dir / REQUESTS
    d.mkdir(exist_ok=True, mode=0o700)
    (d / f"{req.id}.json").write_text(json.dumps(
        {"device": req.device_id, "broker": broker, "token": token}) + "\n", encoding="utf-8")


def recall(me: RequesterIdentity, request_id: str) -> dict[str, Any]:
    path = me.dir / REQUESTS / f"{request_id}.json"
    if "/" in request_id or not path.exists():
        raise DoorwardError(f"no request {request_id!r} was sent from {me.dir}: "
                            "use the id `doorward requester request` printed")
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


class Broker:
    """One MQTT session for the requester's tool (plain TCP allowed: the payloads are signed
    and, on the way back, sealed)."""

    def __init__(self, url: str, timeout: float = 15.0) -> None:
        from uplink import MqttClient  # paho: only when the tool talks to a broker

        self.inbox: queue.Queue[InboundMessage] = queue.Queue()
        self.url, self.timeout = url, timeout
        self.client = MqttClient(MqttSettings(url=url, client_id=f"req-{uuid.uuid4().hex[:12]}",
                                              allow_plain=True), on_message=self.inbox.put)

    def __enter__(self) -> Broker:
        return self

    def connect(self, subscriptions: list[str]) -> None:
        for t in subscriptions:
            self.client.subscribe(t)
        self.client.start()
        if not self.client.wait_connected(self.timeout):
            err = self.client.last_error
            self.client.stop()
            raise DoorwardError(f"cannot reach the broker {self.url}: {err or 'no answer'}")

    def publish(self, topic: str, payload: bytes) -> None:
        handle = self.client.publish(topic, payload, qos=1)
        if not self.client.wait_published(handle, self.timeout):
            raise DoorwardError(f"the broker {self.url} did not acknowledge the request")

    def wait(self, accept: Callable[[InboundMessage], bool], timeout: float) -> bytes | None:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = self.inbox.get(timeout=left)
            except queue.Empty:
                return None
            if accept(msg):
                return msg.payload
        return None

    def __exit__(self, *exc: object) -> None:
        self.client.stop()


def send_request(me: RequesterIdentity, opts: RequestOptions) -> str:
    """Sign and publish the request; returns its id (kept under ``requests/`` for fetch)."""
    req, token = build_request(me, opts)
    with Broker(opts.broker) as b:
        b.connect([])
        b.publish(request_topic(req.device_id), token.encode("ascii"))
    remember(me, req, token, opts.broker)
    return req.id
