"""The translation of botocore exceptions into the S3 errors (defined in :mod:`uplink.errors`).

``translate(exc, what, endpoint=..., bucket=...)`` turns any ``BotoCoreError``/``ClientError`` into
an ``S3Error`` subclass whose message names the fix; ``S3Unavailable`` is the one worth retrying
(connection errors, timeouts, 5xx, throttling). uplink/s3.py re-exports these names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from uplink.errors import (  # re-exported: this module's callers catch them here
    S3AuthError as S3AuthError,
)
from uplink.errors import (
    S3Error as S3Error,
)
from uplink.errors import (
    S3IntegrityError as S3IntegrityError,
)
from uplink.errors import (
    S3NoSuchUpload as S3NoSuchUpload,
)
from uplink.errors import (
    S3NotFound as S3NotFound,
)
from uplink.errors import (
    S3Unavailable as S3Unavailable,
)

if TYPE_CHECKING:
    from botocore.exceptions import ClientError


_AUTH = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken",
         "ExpiredToken", "AllAccessDisabled", "AccountProblem", "InvalidSecurity", "403",
         "Forbidden"}
_INTEGRITY = {"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"}
_TRANSIENT = {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded",
              "TooManyRequests", "RequestTimeout", "InternalError", "ServiceUnavailable"}
_NOT_FOUND = {"NoSuchBucket", "NoSuchKey", "NotFound", "404"}


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def translate(exc: Exception, what: str, *, endpoint: str, bucket: str) -> S3Error:
    """The S3Error for a botocore/boto3 exception raised while doing ``what``."""
    # botocore is imported here, not at the top: the daemon loads it only with a bucket configured
    from botocore.exceptions import (
        ClientError,
        HTTPClientError,
        IncompleteReadError,
        NoCredentialsError,
        PartialCredentialsError,
        SSLError,
    )
    from botocore.exceptions import ConnectionError as BotoConnectionError

    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return S3AuthError(f"{what}: no usable S3 credentials ({exc}): set AWS_ACCESS_KEY_ID/"
                           "AWS_SECRET_ACCESS_KEY or [s3] credentials_file")
    if isinstance(exc, SSLError):  # a certificate problem is configuration, not an outage
        return S3Error(f"{what}: TLS to {endpoint} failed ({exc}): check [s3] endpoint_url and "
                       "the system CA certificates")
    if isinstance(exc, (BotoConnectionError, HTTPClientError, IncompleteReadError)):
        return S3Unavailable(f"bucket endpoint {endpoint} unreachable; uploads wait in the "
                             f"outbox ({what}: {exc})")
    if not isinstance(exc, ClientError):
        return S3Error(f"{what}: {exc}")
    code = error_code(exc)
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    message = str(exc.response.get("Error", {}).get("Message", "")) or str(exc)
    if code == "RequestTimeTooSkewed":
        return S3AuthError(f"{what}: the bucket refused the request's time ({message}): the "
                           "device clock is off by more than 15 minutes; set it (NTP)", code=code)
    if code in _AUTH or status == 403:
        return S3AuthError(f"{what}: {code or status} from {endpoint} ({message}): check "
                           "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or [s3] credentials_file, "
                           f"that they may read and write bucket {bucket!r}, and the device "
                           "clock (signatures expire after 15 minutes)", code=code)
    if code in _INTEGRITY:
        return S3IntegrityError(f"{what}: {code}: the bytes received did not match their SHA-256 "
                                f"({message}); the sealed file changed or was corrupted in "
                                "transit", code=code)
    if code == "NoSuchUpload":
        return S3NoSuchUpload(f"{what}: {message}", code=code)
    if code == "NoSuchBucket":
        return S3NotFound(f"{what}: bucket {bucket!r} does not exist on {endpoint}: create it "
                          "or fix [s3] bucket", code=code)
    if code in _NOT_FOUND or status == 404:
        return S3NotFound(f"{what}: not found in bucket {bucket!r} on {endpoint}", code=code)
    if code in _TRANSIENT or status >= 500 or status == 429:
        return S3Unavailable(f"bucket endpoint {endpoint} answered {status} {code}; uploads wait "
                             f"in the outbox ({what}: {message})", code=code)
    return S3Error(f"{what}: {code or status} from {endpoint}: {message}", code=code)
