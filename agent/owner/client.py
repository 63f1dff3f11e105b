"""The owner tool's conversations with a device over MQTT: pairing and signed commands.

The broker is untrusted: pairing is authenticated by the setup code and the label fingerprint
(:mod:`uplink.pairing`), commands are JWS signed by the owner and answered by JWS signed by the
device, whose result and detail are sealed to the owners (opened here with the owner's identity).

Usage::

    device = pair(keyring, BrokerOptions("mqtt://127.0.0.1:1883"), "dw-...", "ABCD-...")
    reply = send_command(keyring, device, BrokerOptions(device.broker), "consent.show", {})
    if not reply["ok"] and reply["reason"] in TIME_REASONS:
        print(clock_difference(reply))      # "the device clock is 6 min 40 s behind yours"
"""

from __future__ import annotations

import os
import queue
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from agent.errors import DoorwardError
from agent.owner.keyring import OwnerKeyring, PairedDevice
from uplink import (
    ForeignMessage,
    InboundMessage,
    MqttAuthError,
    MqttPort,
    MqttSettings,
    OwnerPairing,
    PairingChallenge,
    PairingResult,
    UplinkError,
    b64u,
    b64u_decode,
    decode_pairing,
    device_topic,
    ed25519_public_from_raw,
    encode_pairing,
    fingerprint,
    read_password_file,
    secret_from_setup_code,
    sign_jws,
    verify_reply,
)

COMMAND_LIFETIME_S = 120
TIME_REASONS = ("expired", "from-future")  # refusals explained by the two clocks


def _span(seconds: float) -> str:
    s = round(abs(seconds))
    if s < 60:
        return f"{s} s"
    if s < 86400:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def clock_difference(reply: dict[str, Any]) -> str:
    """How the device's clock (the reply's ``iat``) compares to this computer's when the reply
    arrived (``received_at``), e.g. "the device clock is 6 min 40 s behind yours"."""
    diff = float(reply["iat"]) - float(reply["received_at"])
    if abs(diff) < 2:  # iat is whole seconds: closer than that is the same time
        return "the device clock agrees with yours"
    return f"the device clock is {_span(diff)} {'ahead of' if diff > 0 else 'behind'} yours"


@dataclass(frozen=True)
class BrokerOptions:
    """How the owner tool reaches the broker (TLS files only for mqtts:// with client certs)."""

    url: str
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never in a log line

    def settings(self, client_id: str, **more: Any) -> MqttSettings:
        # The owner's tool talks to the owner's own broker: plain TCP is the owner's call.
        return MqttSettings(url=self.url, client_id=client_id, ca_file=self.ca_file,
                            cert_file=self.cert_file, key_file=self.key_file, allow_plain=True,
                            username=self.username, password=self.password, **more)

    @classmethod
    def login(cls, url: str, *, ca_file: Path | None = None, cert_file: Path | None = None,
              key_file: Path | None = None, username: str | None = None,
              password_file: Path | None = None) -> BrokerOptions:
        """The options of ``--broker``, the TLS files and ``--username``/``--password-file``
        (the file read now: its text without one trailing newline)."""
        if password_file is not None and not username:
            raise DoorwardError("--password-file needs --username: the broker login's name")
        try:
            password = (read_password_file(password_file, what="--password-file")
                        if password_file is not None else None)
        except UplinkError as exc:
            raise DoorwardError(str(exc)) from exc
        return cls(url, ca_file, cert_file, key_file, username or None, password)


def wait_connected(client: MqttPort, timeout: float) -> bool:
    """Wait up to ``timeout`` s for ``client`` to connect, but return False at once when the
    broker refuses the login or the certificate (``client.last_error`` then names the fix)."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        if client.wait_connected(min(left, 0.1)):
            return True
        if isinstance(client.last_error, MqttAuthError):
            return False
    return client.is_connected


def add_login_arguments(p: Any) -> None:
    """``--username`` and ``--password-file`` on an argparse parser: a broker login (the
    Mosquitto add-on's); :meth:`BrokerOptions.login` reads them."""
    p.add_argument("--username", metavar="U", help="broker login name (with --password-file)")
    p.add_argument("--password-file", type=Path, metavar="F",
                   help="file holding the broker password on one line (never on the command "
                        "line, where other users could read it)")


class _Session:
    """A connected client with an inbox; subscriptions are in force once entered."""

    def __init__(self, broker: BrokerOptions, subscriptions: list[str], timeout: float) -> None:
        self.inbox: queue.Queue[InboundMessage] = queue.Queue()
        from uplink import MqttClient  # paho: only when the owner's tool talks to a broker

        self.client = MqttClient(broker.settings(f"owner-{uuid.uuid4().hex[:12]}"),
                                 on_message=self.inbox.put)
        self.subscriptions = subscriptions
        self.timeout = timeout
        self.broker = broker

    def __enter__(self) -> _Session:
        for t in self.subscriptions:
            self.client.subscribe(t)
        self.client.start()
        deadline = time.monotonic() + self.timeout
        while not self.client.wait_connected(0.05):
            # A refusal (wrong credentials, not authorised, nothing listening, TLS) ends it at
            # once: waiting out the timeout would only hide the reason.
            error = self._connection_error()
            if error is not None or time.monotonic() >= deadline:
                self.client.stop()
                error = error or self.client.last_error
                if isinstance(error, MqttAuthError):  # no use waiting: the fix is in the message
                    raise DoorwardError(f"the broker {self.broker.url} refused us: {error}")
                raise DoorwardError(f"cannot reach the broker {self.broker.url}: "
                                    f"{error or 'no answer'} (here: --broker and its TLS "
                                    "files; is the broker running?)")
        return self

    def _connection_error(self) -> Exception | None:
        while True:
            try:
                event = self.client.events.get_nowait()
            except queue.Empty:
                return None
            if not event.connected and event.error is not None:
                return event.error

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.client.stop()

    def publish(self, topic_name: str, payload: bytes, *, retain: bool = False) -> None:
        handle = self.client.publish(topic_name, payload, qos=1, retain=retain)
        if not self.client.wait_published(handle, self.timeout):
            raise DoorwardError(f"the broker {self.broker.url} did not acknowledge the message")

    def next(self, deadline: float) -> InboundMessage | None:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        try:
            return self.inbox.get(timeout=left)
        except queue.Empty:
            return None


HELLO_EVERY_S = 2.0  # how often `owner pair` says hello again while no window answers


def pair(keyring: OwnerKeyring, broker: BrokerOptions, device_id: str, setup_code: str, *,
         expected_fingerprint: str | None = None, timeout: float = 30.0,
         on_wait: Callable[[float], None] | None = None) -> PairedDevice:
    """Run the pairing exchange with a device whose SETUP button is (or will be) held.

    Until the device answers, a fresh hello goes out every ``HELLO_EVERY_S`` (a device ignores
    hellos while its window is closed, so the owner may start this first, then hold SETUP);
    ``on_wait(seconds_left)`` hears each retry. Each hello is its own exchange (the device
    starts afresh on every hello): a challenge or result is matched to the exchange it
    answers, so a hello crossing the device's first challenge does no harm."""
    try:
        secret = secret_from_setup_code(setup_code)
        OwnerPairing(device_id, expected_fingerprint, secret, keyring.key, keyring.recipient)
    except UplinkError as exc:
        raise DoorwardError(f"cannot pair: {exc}") from exc
    deadline = time.monotonic() + timeout
    exchanges: list[OwnerPairing] = []
    pair_topic = device_topic(device_id, "pair", "owner")
    with _Session(broker, [device_topic(device_id, "pair", "device")], timeout) as s:

        def hello() -> float:
            exchange = OwnerPairing(device_id, expected_fingerprint, secret, keyring.key,
                                    keyring.recipient)
            exchanges.append(exchange)
            s.publish(pair_topic, encode_pairing(exchange.hello()))
            return time.monotonic() + HELLO_EVERY_S

        next_hello, answered, outcome = hello(), False, None
        while outcome is None:
            msg = s.next(deadline if answered else min(deadline, next_hello))
            if msg is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DoorwardError(
                        f"no answer from {device_id} within {timeout:.0f} s: hold the SETUP "
                        "button for 3 s (the LED blinks) and run this again within 60 s "
                        "(or give --timeout more seconds and hold SETUP while it waits)")
                if on_wait is not None:
                    on_wait(left)
                next_hello = hello()
                continue
            try:
                decoded = decode_pairing(msg.payload)
                if isinstance(decoded, PairingChallenge):
                    s.publish(pair_topic, encode_pairing(_ours(
                        exchanges, OwnerPairing.on_challenge, decoded)))
                    answered = True
                elif isinstance(decoded, PairingResult):
                    outcome = _ours(exchanges, OwnerPairing.on_result, decoded)
            except ForeignMessage:
                continue  # someone else's exchange, or tampered: keep waiting for our peer
            except UplinkError as exc:
                raise DoorwardError(f"pairing with {device_id} failed: {exc}") from exc
    device = PairedDevice(device_id=device_id, public_key=b64u(outcome.device_key),
                          fingerprint=fingerprint(outcome.device_key), broker=broker.url,
                          paired_at=time.time())
    keyring.add_device(device)
    return device


def _ours(exchanges: list[OwnerPairing], step: Callable[[OwnerPairing, Any], Any],
          message: Any) -> Any:
    """``step`` of the newest exchange the message belongs to (each resend of the greeting is an
    exchange of its own); ForeignMessage when it belongs to none."""
    for exchange in reversed(exchanges):
        try:
            return step(exchange, message)
        except ForeignMessage as exc:
            last = exc
    raise last


def send_command(keyring: OwnerKeyring, device: PairedDevice, broker: BrokerOptions, cmd: str,
                 args: dict[str, Any], *, timeout: float = 15.0) -> dict[str, Any]:
    """Sign ``cmd`` for ``device``, send it, and return the device's verified, opened reply:
    ``jti``, ``ok``, ``reason`` (refused), ``result``, ``detail``, ``iat`` (the device's clock)
    and ``received_at`` (this computer's when it arrived)."""
    return send_command_replies(keyring, device, broker, cmd, args, timeout=timeout)[0]


def send_command_replies(keyring: OwnerKeyring, device: PairedDevice, broker: BrokerOptions,
                         cmd: str, args: dict[str, Any], *, timeout: float = 15.0,
                         more: Callable[[dict[str, Any]], bool] = lambda _r: False
                         ) -> list[dict[str, Any]]:
    """:func:`send_command`, then further replies to the same command while ``more(last)`` says
    one is due (a forget's bucket part), within the same ``timeout``. Returns every reply, the
    first at least (DoorwardError when none comes)."""
    cmd_topic = device_topic(device.device_id, "cmd")
    jti = b64u(os.urandom(16))
    device_key = ed25519_public_from_raw(b64u_decode(device.public_key))
    deadline = time.monotonic() + timeout
    replies: list[dict[str, Any]] = []
    with _Session(broker, [device_topic(device.device_id, "resp")], timeout) as s:
        # Connected first, then the counter: nothing with a later counter is signed (by this or
        # any other process on the owner dir) until the broker has this command.
        with keyring.sending(device.device_id) as ctr:
            now = int(time.time())
            exp = now + COMMAND_LIFETIME_S
            claims = {"iss": keyring.key_id, "aud": device.device_id, "iat": now,
                      "exp": exp, "jti": jti, "ctr": ctr, "cmd": cmd,
                      "topic": cmd_topic, "args": args}
            s.publish(cmd_topic, sign_jws(claims, keyring.key, kid=keyring.key_id).encode())
        while (msg := s.next(deadline)) is not None:
            reply = _open_reply(msg.payload, device_key, keyring, jti)
            if reply is None:
                continue
            replies.append(reply)
            if not more(reply):
                return replies
    if replies:
        return replies
    raise DoorwardError(unanswered(device.device_id, broker.url, timeout, exp))


def unanswered(device_id: str, url: str, timeout: float, exp: int) -> str:
    """What the owner is told when no answer came: the broker keeps the command for the device
    (its session outlives the daemon), so it may still act; how to find out whether it did."""
    until = time.strftime("%H:%M:%S", time.localtime(exp))
    return (f"no signed answer from {device_id} within {timeout:.0f} s: is its daemon running and "
            f"connected to {url}? The broker keeps the command for it: it still acts on it "
            f"when the device connects before {until} (a revocation or a removal, whenever it "
            "connects within the hour the broker keeps its session); its ledger (`doorward owner "
            "ledger fetch`) shows whether it did")


def command(keyring: OwnerKeyring, device: PairedDevice, broker: BrokerOptions, cmd: str,
            args: dict[str, Any], timeout: float = 15.0) -> dict[str, Any]:
    """:func:`send_command`, with a refusal raised as the DoorwardError :func:`refused` names."""
    reply = send_command(keyring, device, broker, cmd, args, timeout=timeout)
    refused(device, cmd, reply)
    return reply


def refused(device: PairedDevice, cmd: str, reply: dict[str, Any]) -> None:
    """DoorwardError naming the refusal; for a time refusal, the clock difference and the fix."""
    if reply.get("ok"):
        return
    reason, detail = reply.get("reason"), reply.get("detail") or "no detail"
    message = f"{device.device_id} refused {cmd}: {reason} ({detail})"
    if reason in TIME_REASONS:
        message += (f"; {clock_difference(reply)}: set the clock that is wrong (on the device "
                    "`doorward doctor` checks it), then try again. Revoking consent, "
                    "forgetting clips and removing a member work whatever the clocks say")
    raise DoorwardError(message)


def _open_reply(payload: bytes, device_key: Any, keyring: OwnerKeyring,
                jti: str) -> dict[str, Any] | None:
    """The reply to ``jti`` as a dict, or None for anything else on the topic (the broker is
    untrusted: unsigned or other commands' replies are ignored)."""
    received = time.time()
    try:
        v = verify_reply(payload, device_key)
    except UplinkError:
        return None  # not signed by our device, or not a reply
    if v.jti != jti:
        return None
    if v.sealed:
        try:
            v = verify_reply(payload, device_key, identities=[keyring.identity])
        except UplinkError as exc:
            raise DoorwardError(
                f"the device's reply to {jti} is sealed, but not to this owner's identity "
                f"({exc}): is {keyring.recipient} still a member?") from exc
    return {"iss": v.iss, "iat": v.iat, "jti": v.jti, "ok": v.ok, "reason": v.reason,
            "result": dict(v.result), "detail": v.detail, "received_at": received}
