"""Everything that leaves the device: sealing (age), signing (JWS), the signed wire formats, and
the MQTT and S3 adapters. This module is the package's face: ``agent`` imports only from here
(``from uplink import Manifest, verify_manifest``; an import-linter contract keeps it so), tests
and scripts may reach into the modules.

``uplink`` imports nothing from ``agent`` or ``motion``. What is where:

    errors        every error class, the tree on one page (UplinkError and below)
    wire          canonical and strict JSON, id/hash checks, timestamp formats, topic builders
    keys          Ed25519 key files, device ids, key ids, fingerprints, base64url
    age, agekeys  age v1 encryption (sealing to the owners) and its X25519 key strings
    age_seek      random access into an age file the owner opens (HTTP range requests)
    age_rewrap    a new age header for a requester: hand a clip over without re-uploading it
    requests      footage requests: the signed request, the owner's grant, ledger entry proofs
    jws           compact JWS with EdDSA, and the check every device-signed token gets
    messages      the device's signed messages on MQTT (events, status, uploads)
    replies       the device's signed replies to owner commands (results sealed to owners)
    body_checks   the strict checks messages and replies share
    manifest      the signed manifest beside each uploaded clip, and the owner's chain check
    clip_progress the signed progress record of a clip uploaded live, segment by segment
    checkpoint    ledger checkpoints stored in the bucket
    ledger_format the consent ledger's export format and its offline verification
    live_format   live view's sealed, signed messages (session key sealed to the requester)
    pairing       the owner pairing protocol (setup code from the label, key exchange)
    mqtt, mqtt_types, brokerurl   the MQTT adapter (paho), its settings and URL rules
    s3, s3_errors, s3_multipart, objectstore   the S3 adapter (boto3), its port and settings
    s3_listing    listing with ETags (the owner app's manifest cache), boto3 on first use
    loopback_mqtt, memory_store   the in-memory twins of the broker and the bucket, for tests
                  and development (as gpiozero ships MockFactory): same surface, no server

Names that would be vague on their own get the module's word (``sign_jws``, ``PairingHello``,
``LEDGER_FORMAT``, ``check_checkpoint_key``). ``MqttClient`` (paho, ~12 MB) and
``S3ObjectStore`` (boto3, ~25 MB) load their library on first use, through :func:`__getattr__`
(PEP 562), so a device without a broker or a bucket never imports them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from uplink.age import (
    CHUNK_SIZE as AGE_CHUNK_SIZE,
)
from uplink.age import (
    NONCE_SIZE as AGE_NONCE_SIZE,
)
from uplink.age import (
    SEALED_CHUNK_SIZE as AGE_SEALED_CHUNK_SIZE,
)
from uplink.age import (
    AgeReader,
    AgeWriter,
    decrypt,
    decrypt_file,
    encrypt,
    sealed_prefix_length,
)
from uplink.age import (
    parse_header as parse_age_header,
)
from uplink.age_seek import SeekableAge
from uplink.agekeys import Identity, Recipient, load_identities, write_identity_file
from uplink.brokerurl import BrokerUrl, parse_broker_url
from uplink.chain_check import ChainChecker, ChainIssue
from uplink.checkpoint import (
    MAX_CHECKPOINT_BYTES,
    Checkpoint,
    checkpoint_key,
    checkpoint_prefix,
    is_checkpoint_key,
    sign_checkpoint,
    verify_checkpoint,
)
from uplink.checkpoint import (
    check_key as check_checkpoint_key,
)
from uplink.checkpoint import (
    inconsistent as inconsistent_checkpoints,
)
from uplink.checkpoint import (
    not_extended as checkpoint_not_extended,
)
from uplink.clip_progress import (
    MAX_PROGRESS_BYTES,
    ClipProgress,
    progress_key,
    segment_key,
    sign_progress,
    verify_progress,
)
from uplink.clip_progress import (
    extended as extended_progress,
)
from uplink.errors import (
    AgeError,
    Bech32Error,
    CheckpointError,
    ClipProgressError,
    ForeignMessage,
    HeaderError,
    HeaderMacError,
    JwsError,
    KeyFileError,
    ManifestError,
    MessageError,
    MessageTooLargeError,
    MqttAuthError,
    MqttConfigError,
    MqttConnectError,
    MqttError,
    MqttLimitError,
    MqttPublishError,
    MqttTlsError,
    NoIdentityMatch,
    PairingError,
    PayloadError,
    S3AuthError,
    S3Error,
    S3IntegrityError,
    S3NoSuchUpload,
    S3NotFound,
    S3Unavailable,
    TruncatedError,
    UplinkError,
)
from uplink.jws import ALG as JWS_ALG
from uplink.jws import DeviceToken, verify_device_token
from uplink.jws import peek as peek_jws
from uplink.jws import sign as sign_jws
from uplink.jws import verify as verify_jws
from uplink.keys import (
    b64u,
    b64u_decode,
    device_id_for,
    ed25519_public_from_raw,
    fingerprint,
    key_id_for,
    load_ed25519,
    public_raw,
    read_private_file,
    save_ed25519,
    write_private_file,
)
from uplink.ledger_format import FORMAT as LEDGER_FORMAT
from uplink.ledger_format import GENESIS_PREV as LEDGER_GENESIS_PREV
from uplink.ledger_format import HEADER_CONTEXT as LEDGER_HEADER_CONTEXT
from uplink.ledger_format import VerifyReport as LedgerReport
from uplink.ledger_format import entry_hash as ledger_entry_hash
from uplink.ledger_format import verify_entries as verify_ledger_entries
from uplink.ledger_format import verify_jsonl as verify_ledger_jsonl

# live view (issue 17): the sealed, signed messages of a live session
from uplink.live_format import (
    LIVE_SCHEMA,
    LiveFormatError,
    LiveReceiver,
    LiveSealer,
    LiveSegment,
)
from uplink.manifest import (
    MAX_MANIFEST_BYTES,
    ChainReport,
    ClipObject,
    Manifest,
    SeqState,
    check_manifest_chain,
    seal_times,
    sign_manifest,
    token_hash,
    unseal_times,
    verify_manifest,
)
from uplink.messages import (
    MAX_MESSAGE_BYTES,
    Body,
    DeviceMessage,
    EventBody,
    MessageSigner,
    SignedMessage,
    StatusBody,
    UploadedBody,
    VerifiedMessage,
    next_message,
    sign_status,
    topic_for,
    verify_message,
)
from uplink.mqtt_types import (
    ConnectionEvent,
    InboundMessage,
    MqttConnector,
    MqttPort,
    MqttSettings,
    PublishHandle,
    check_publish_limits,
    read_password_file,
)
from uplink.objectstore import (
    ClipKeys,
    Fetched,
    ObjectInfo,
    ObjectStore,
    PutResult,
    S3Settings,
    file_sha256,
    object_keys,
)
from uplink.pairing import Challenge as PairingChallenge
from uplink.pairing import Confirm as PairingConfirm
from uplink.pairing import (
    DevicePairing,
    OwnerPairing,
    secret_from_setup_code,
    setup_code_from_secret,
)
from uplink.pairing import Hello as PairingHello
from uplink.pairing import Message as PairingMessage
from uplink.pairing import Result as PairingResult
from uplink.pairing import decode as decode_pairing
from uplink.pairing import encode as encode_pairing
from uplink.replies import (
    MAX_REPLY_BYTES,
    ForgetResultBody,
    Reply,
    VerifiedReply,
    sign_reply,
    verify_reply,
)
from uplink.s3_multipart import ResumeState
from uplink.wire import (
    DEVICE_ID_RE,
    ID_RE,
    KEY_ID_RE,
    MAX_INT,
    TOPIC_ROOT,
    JsonRefused,
    canonical_json,
    compact_utc,
    device_topic,
    is_device_id,
    is_hex64,
    is_id,
    is_int,
    is_iso_utc,
    iso_utc,
    iso_utc_seconds,
    iso_utc_z,
    loads_strict,
    std_b64,
    std_b64_decode,
    strict_json_object,
)

# isort: split
# --- footage requests from third parties (issue 16): one block, merges beside the others ---
from uplink.age_rewrap import (
    decrypt_with_file_key,
    file_key_of,
    join_header,
    payload_of,
    rewrap_header,
)
from uplink.errors import RequestError
from uplink.requests import (
    BUNDLE_FORMAT,
    ClipUrls,
    FootageRequest,
    Grant,
    GrantedClip,
    GrantEnvelope,
    check_ledger_entry,
    paired_owner_ids,
    sign_grant,
    sign_request,
    verify_grant,
    verify_request,
)

# --- end footage requests ---

if TYPE_CHECKING:  # mypy sees the types; at run time __getattr__ loads them on first use
    from uplink.loopback_mqtt import LoopbackBroker, LoopbackMqttClient
    from uplink.memory_store import MemoryObjectStore
    from uplink.mqtt import MqttClient
    from uplink.s3 import S3ObjectStore
    from uplink.s3_listing import list_with_etags

# name -> module; importing the module pulls in paho or boto3, or (the in-memory twins) is for
# tests only: the daemon need not hold them
_LAZY = {"MqttClient": "uplink.mqtt", "S3ObjectStore": "uplink.s3",
         "list_with_etags": "uplink.s3_listing", "LoopbackBroker": "uplink.loopback_mqtt",
         "LoopbackMqttClient": "uplink.loopback_mqtt", "MemoryObjectStore": "uplink.memory_store"}


def __getattr__(name: str) -> Any:
    """``uplink.MqttClient`` and ``uplink.S3ObjectStore``: imported when first asked for."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'uplink' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


__all__ = [
    "AGE_CHUNK_SIZE",
    "AGE_NONCE_SIZE",
    "AGE_SEALED_CHUNK_SIZE",
    "DEVICE_ID_RE",
    "ID_RE",
    "JWS_ALG",
    "KEY_ID_RE",
    "LEDGER_FORMAT",
    "LEDGER_GENESIS_PREV",
    "LEDGER_HEADER_CONTEXT",
    "LIVE_SCHEMA",
    "MAX_CHECKPOINT_BYTES",
    "MAX_INT",
    "MAX_MANIFEST_BYTES",
    "MAX_MESSAGE_BYTES",
    "MAX_PROGRESS_BYTES",
    "MAX_REPLY_BYTES",
    "TOPIC_ROOT",
    "AgeError",
    "AgeReader",
    "AgeWriter",
    "Bech32Error",
    "Body",
    "BrokerUrl",
    "ChainChecker",
    "ChainIssue",
    "ChainReport",
    "Checkpoint",
    "CheckpointError",
    "ClipKeys",
    "ClipObject",
    "ClipProgress",
    "ClipProgressError",
    "ConnectionEvent",
    "DeviceMessage",
    "DevicePairing",
    "DeviceToken",
    "EventBody",
    "Fetched",
    "ForeignMessage",
    "ForgetResultBody",
    "HeaderError",
    "HeaderMacError",
    "Identity",
    "InboundMessage",
    "JsonRefused",
    "JwsError",
    "KeyFileError",
    "LedgerReport",
    "LiveFormatError",
    "LiveReceiver",
    "LiveSealer",
    "LiveSegment",
    "LoopbackBroker",
    "LoopbackMqttClient",
    "Manifest",
    "ManifestError",
    "MemoryObjectStore",
    "MessageError",
    "MessageSigner",
    "MessageTooLargeError",
    "MqttAuthError",
    "MqttClient",
    "MqttConfigError",
    "MqttConnectError",
    "MqttConnector",
    "MqttError",
    "MqttLimitError",
    "MqttPort",
    "MqttPublishError",
    "MqttSettings",
    "MqttTlsError",
    "NoIdentityMatch",
    "ObjectInfo",
    "ObjectStore",
    "OwnerPairing",
    "PairingChallenge",
    "PairingConfirm",
    "PairingError",
    "PairingHello",
    "PairingMessage",
    "PairingResult",
    "PayloadError",
    "PublishHandle",
    "PutResult",
    "Recipient",
    "Reply",
    "ResumeState",
    "S3AuthError",
    "S3Error",
    "S3IntegrityError",
    "S3NoSuchUpload",
    "S3NotFound",
    "S3ObjectStore",
    "S3Settings",
    "S3Unavailable",
    "SeekableAge",
    "SeqState",
    "SignedMessage",
    "StatusBody",
    "TruncatedError",
    "UplinkError",
    "UploadedBody",
    "VerifiedMessage",
    "VerifiedReply",
    "b64u",
    "b64u_decode",
    "canonical_json",
    "check_checkpoint_key",
    "check_manifest_chain",
    "check_publish_limits",
    "checkpoint_key",
    "checkpoint_not_extended",
    "checkpoint_prefix",
    "compact_utc",
    "decode_pairing",
    "decrypt",
    "decrypt_file",
    "device_id_for",
    "device_topic",
    "ed25519_public_from_raw",
    "encode_pairing",
    "encrypt",
    "extended_progress",
    "file_sha256",
    "fingerprint",
    "inconsistent_checkpoints",
    "is_checkpoint_key",
    "is_device_id",
    "is_hex64",
    "is_id",
    "is_int",
    "is_iso_utc",
    "iso_utc",
    "iso_utc_seconds",
    "iso_utc_z",
    "key_id_for",
    "ledger_entry_hash",
    "list_with_etags",
    "load_ed25519",
    "load_identities",
    "loads_strict",
    "next_message",
    "object_keys",
    "parse_age_header",
    "parse_broker_url",
    "peek_jws",
    "progress_key",
    "public_raw",
    "read_password_file",
    "read_private_file",
    "save_ed25519",
    "seal_times",
    "sealed_prefix_length",
    "secret_from_setup_code",
    "segment_key",
    "setup_code_from_secret",
    "sign_checkpoint",
    "sign_jws",
    "sign_manifest",
    "sign_progress",
    "sign_reply",
    "sign_status",
    "std_b64",
    "std_b64_decode",
    "strict_json_object",
    "token_hash",
    "topic_for",
    "unseal_times",
    "verify_checkpoint",
    "verify_device_token",
    "verify_jws",
    "verify_ledger_entries",
    "verify_ledger_jsonl",
    "verify_manifest",
    "verify_message",
    "verify_progress",
    "verify_reply",
    "write_identity_file",
    "write_private_file",
]
__all__ += [  # footage requests (issue 16)
    "BUNDLE_FORMAT", "ClipUrls", "FootageRequest", "Grant", "GrantEnvelope", "GrantedClip",
    "RequestError",
    "check_ledger_entry", "decrypt_with_file_key", "file_key_of", "join_header",
    "paired_owner_ids", "payload_of", "rewrap_header", "sign_grant", "sign_request",
    "verify_grant", "verify_request",
]  # fmt: skip
