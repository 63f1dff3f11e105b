"""Every error the ``uplink`` package raises, on one page.

All derive from :class:`UplinkError`, so ``except UplinkError`` catches anything uplink raises
(library errors from cryptography, paho or botocore are translated at the adapter and never
leak). Each message names the culprit and, where there is one, the fix. The modules that raise
them re-export them (``uplink.age.AgeError is uplink.errors.AgeError``), and ``uplink`` exports
them all::

    UplinkError                 base of everything below
    ├── KeyFileError            a key or secret file is missing, malformed, readable by others,
    │                           or already exists -> fix its mode (0600) or path; delete it first
    │                           to replace it (a factory reset does)
    ├── AgeError                base of the age format errors (uplink.age, uplink.agekeys)
    │   ├── NoIdentityMatch     none of the identities opens the file: it was sealed to other
    │   │                       recipients -> use the owner identity it was sealed to
    │   ├── HeaderError         the header is malformed or unsupported -> not an age v1 file
    │   │   └── HeaderMacError  the header MAC fails: the header was altered
    │   ├── PayloadError        a payload chunk fails authentication: altered or corrupt
    │   │   └── TruncatedError  no final chunk: the file was cut short (crash, partial copy)
    │   └── Bech32Error         an age1.../AGE-SECRET-KEY-... string is not valid Bech32 (typo,
    │                           truncation, mixed case) -> copy the key again
    ├── JwsError                a token is malformed, too large, uses another algorithm than
    │                           EdDSA, or its signature is wrong (wrong key or altered token)
    ├── ManifestError           a clip manifest is malformed, not signed by the device, or
    │                           cannot be unsealed with the identities given
    ├── MessageError            a device message or reply is malformed, not signed by the
    │   │                       device, or cannot be opened
    │   └── MessageTooLargeError  it would exceed its size limit -> split or shorten it
    ├── ClipProgressError       a live-upload progress record is malformed or not signed
    ├── CheckpointError         a ledger checkpoint is malformed, not signed by the device, or
    │                           not what its object name says
    ├── PairingError            pairing failed or a pairing message is malformed; the message
    │   │                       says which step and what to do (press setup again, ...)
    │   └── ForeignMessage      not from the expected peer, or altered in transit; nothing
    │                           changed, the session goes on
    ├── MqttError               base of the MQTT adapter's errors (uplink.mqtt, uplink.brokerurl)
    │   ├── MqttConfigError     the [mqtt] settings are unusable: bad URL, plain TCP to a
    │   │                       non-loopback host, unreadable certificate files -> fix the config
    │   ├── MqttConnectError    the broker is unreachable: refused, unresolvable, timed out,
    │   │                       connection lost -> the client retries; check url and network
    │   ├── MqttTlsError        the TLS handshake failed on our side (the broker's certificate
    │   │                       does not verify) -> check ca_file and the broker's host name
    │   ├── MqttAuthError       the broker refused us: client certificate, credentials or topic
    │   │                       authorisation -> check the device's certificate and broker ACL
    │   ├── MqttLimitError      a publish exceeds what fleet brokers accept (QoS <= 1, 128 KB
    │   │                       payload, 7 slashes in a topic) -> send less
    │   └── MqttPublishError    a publish was not accepted (broker reason code, queue full)
    └── S3Error                 a bucket operation failed; ``code`` is the S3 error code
        ├── S3AuthError         credentials missing, wrong or not allowed, or the device clock is
        │                       off by > 15 minutes -> AWS_ACCESS_KEY_ID/... or
        │                       [s3] credentials_file, the bucket policy, NTP
        ├── S3NotFound          the bucket or object does not exist -> create it, fix [s3] bucket
        │   └── S3NoSuchUpload  the multipart UploadId is unknown (aborted, expired, completed):
        │                       the upload starts over
        ├── S3Unavailable       the endpoint is unreachable or failing (5xx, throttling) after
        │                       every retry: the only one worth retrying later; uploads wait
        └── S3IntegrityError    the bytes did not match their SHA-256 (``BadDigest``), or the
                                file changed since it was sealed

Non-errors worth knowing: :class:`uplink.wire.JsonRefused` is a ``ValueError`` that the wire
parsers raise and every caller translates into one of the errors above.
"""

from __future__ import annotations

__all__ = [
    "AgeError",
    "Bech32Error",
    "CheckpointError",
    "ClipProgressError",
    "ForeignMessage",
    "HeaderError",
    "HeaderMacError",
    "JwsError",
    "KeyFileError",
    "ManifestError",
    "MessageError",
    "MessageTooLargeError",
    "MqttAuthError",
    "MqttConfigError",
    "MqttConnectError",
    "MqttError",
    "MqttLimitError",
    "MqttPublishError",
    "MqttTlsError",
    "NoIdentityMatch",
    "PairingError",
    "PayloadError",
    "S3AuthError",
    "S3Error",
    "S3IntegrityError",
    "S3NoSuchUpload",
    "S3NotFound",
    "S3Unavailable",
    "TruncatedError",
    "UplinkError",
]


class UplinkError(Exception):
    """Base of all errors raised by the ``uplink`` package."""


class KeyFileError(UplinkError):
    """A key or secret file is missing, malformed, readable by others, or already exists."""


# --- age -------------------------------------------------------------------------------------


class AgeError(UplinkError):
    """Base of all age format errors."""


class NoIdentityMatch(AgeError):
    """None of the given identities can open the file (it was sealed to other recipients)."""


class HeaderError(AgeError):
    """The header is malformed, unsupported or fails authentication."""


class HeaderMacError(HeaderError):
    """The header MAC does not verify (``HMAC failure`` in the conformance vectors)."""


class PayloadError(AgeError):
    """A payload chunk fails authentication or the chunk structure is invalid."""


class TruncatedError(PayloadError):
    """The payload ends without a final chunk: the file was cut short (crash, partial copy)."""


class Bech32Error(AgeError):
    """A key string is not valid Bech32 (typo, truncation, mixed case)."""


# --- signed formats --------------------------------------------------------------------------


class JwsError(UplinkError):
    """A token is malformed, too large, uses another algorithm, or its signature is wrong."""


class ManifestError(UplinkError):
    """A manifest is malformed, not signed by the device, or cannot be unsealed."""


class MessageError(UplinkError):
    """A device message is malformed, too large, not signed by the device, or cannot be opened."""


class MessageTooLargeError(MessageError):
    """A message or reply would exceed its size limit: split or shorten what it carries."""


class ClipProgressError(UplinkError):
    """A progress record is malformed or not signed by the device."""


class CheckpointError(UplinkError):
    """A checkpoint is malformed, not signed by the device, or not what its name says."""


class PairingError(UplinkError):
    """Pairing failed or a message is malformed; the message says which and what to do."""


class ForeignMessage(PairingError):
    """A message not from the expected peer, or altered in transit; nothing changed."""


# --- MQTT ------------------------------------------------------------------------------------



class RequestError(UplinkError):
    """A footage request, grant or bundle is malformed, not signed by whom it must be, expired,
    or altered (uplink.requests); the message says which and where."""


class MqttError(UplinkError):
    """Base of MQTT errors; the message names the culprit and the fix."""


class MqttConfigError(MqttError):
    """The [mqtt] settings are unusable (bad URL, plain TCP not allowed, unreadable cert files)."""


class MqttConnectError(MqttError):
    """The broker could not be reached (refused, unresolvable, timed out, connection lost)."""


class MqttTlsError(MqttError):
    """The TLS handshake failed on our side (e.g. the broker's certificate does not verify)."""


class MqttAuthError(MqttError):
    """The broker refused us: client certificate, credentials or topic authorisation."""


class MqttLimitError(MqttError):
    """A publish exceeds what fleet brokers accept (QoS <= 1, 128 KB payload, 7 slashes)."""


class MqttPublishError(MqttError):
    """A publish was not accepted (broker reason code, client queue full)."""


# --- S3 --------------------------------------------------------------------------------------


class S3Error(UplinkError):
    """A bucket operation failed; ``code`` is the S3 error code when the server sent one."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class S3AuthError(S3Error):
    """Credentials missing, unknown, wrong, or not allowed to do this."""


class S3NotFound(S3Error):
    """The bucket (or the object) does not exist."""


class S3NoSuchUpload(S3NotFound):
    """The multipart UploadId is unknown: aborted, expired or completed."""


class S3Unavailable(S3Error):
    """The endpoint is unreachable or failing (5xx, throttling) after every retry: try later."""


class S3IntegrityError(S3Error):
    """The bytes did not match their SHA-256 (``BadDigest``), or the file changed since sealing."""
