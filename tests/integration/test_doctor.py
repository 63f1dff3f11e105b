"""``doorward doctor``'s broker and bucket checks against real Mosquitto and SeaweedFS: reachable,
unreachable, and bad credentials or certificates, with the errors uplink translates."""

from __future__ import annotations

from pathlib import Path

from agent.config import Config, MqttConfig, S3Config
from agent.tools.doctor import FAIL, PASS, check_broker, check_bucket
from tests.servers import Mosquitto, TestCA, free_port
from tests.servers_s3 import SeaweedS3

TIMEOUT_S = 5.0


def mqtt_config(url: str, **kw: object) -> Config:
    return Config(mqtt=MqttConfig(url=url, **kw))  # type: ignore[arg-type]


def test_broker_reachable_plain(mosquitto: Mosquitto) -> None:
    check = check_broker(mqtt_config(mosquitto.url), None, "dw-doctor1", TIMEOUT_S)
    assert check.status == PASS, check
    assert "plain TCP" in check.summary
    # the doctor connected under its own client id, never the daemon's
    assert "dw-doctor1-doctor" in mosquitto.log_text()


def test_broker_unreachable() -> None:
    url = f"mqtt://127.0.0.1:{free_port()}"  # nothing listens there
    check = check_broker(mqtt_config(url), None, None, TIMEOUT_S)
    assert check.status == FAIL
    assert "nothing accepts connections" in check.summary


def test_broker_tls_with_client_certificate(mosquitto_tls: Mosquitto) -> None:
    cert, key = mosquitto_tls.issue_client_cert("dw-tlsdoc")
    cfg = mqtt_config(mosquitto_tls.tls_url, ca_file=str(mosquitto_tls.ca_file),
                      cert_file=str(cert), key_file=str(key))
    check = check_broker(cfg, None, "dw-tlsdoc", TIMEOUT_S)
    assert check.status == PASS, check
    assert "TLS, server verified" in check.summary


def test_broker_tls_wrong_ca_is_named(mosquitto_tls: Mosquitto, tmp_path: Path) -> None:
    cert, key = mosquitto_tls.issue_client_cert("dw-tlsdoc")
    other = TestCA.create(tmp_path / "other-ca", "Some other CA")
    cfg = mqtt_config(mosquitto_tls.tls_url, ca_file=str(other.cert_file),
                      cert_file=str(cert), key_file=str(key))
    check = check_broker(cfg, None, "dw-tlsdoc", TIMEOUT_S)
    assert check.status == FAIL and "ca_file" in check.summary, check


def test_broker_tls_rogue_client_certificate_is_refused(mosquitto_tls: Mosquitto,
                                                        tmp_path: Path) -> None:
    cert, key = TestCA.create(tmp_path / "rogue", "Rogue CA").issue("dw-tlsdoc")
    cfg = mqtt_config(mosquitto_tls.tls_url, ca_file=str(mosquitto_tls.ca_file),
                      cert_file=str(cert), key_file=str(key))
    check = check_broker(cfg, None, "dw-tlsdoc", TIMEOUT_S)
    assert check.status == FAIL and "cert_file" in check.summary, check


def test_broker_tls_missing_key_file(mosquitto_tls: Mosquitto, tmp_path: Path) -> None:
    cert, _ = mosquitto_tls.issue_client_cert("dw-tlsdoc")
    cfg = mqtt_config(mosquitto_tls.tls_url, ca_file=str(mosquitto_tls.ca_file),
                      cert_file=str(cert), key_file=str(tmp_path / "gone.key"))
    check = check_broker(cfg, None, "dw-tlsdoc", TIMEOUT_S)
    assert check.status == FAIL and "key_file" in check.summary and "does not exist" in \
        check.summary


def _credentials(tmp_path: Path, access: str, secret: str) -> str:
    path = tmp_path / "s3-credentials"
    path.write_text(f"[default]\naws_access_key_id = {access}\n"
                    f"aws_secret_access_key = {secret}\n", encoding="utf-8")
    return str(path)


def s3_config(server_url: str, bucket: str, credentials_file: str) -> Config:
    return Config(s3=S3Config(bucket=bucket, endpoint_url=server_url, addressing_style="path",
                              credentials_file=credentials_file))


def test_bucket_reachable(seaweed: SeaweedS3, tmp_path: Path) -> None:
    bucket = seaweed.create_bucket("doctor")
    creds = _credentials(tmp_path, seaweed.access_key, seaweed.secret_key)
    check = check_bucket(s3_config(seaweed.url, bucket, creds), TIMEOUT_S)
    assert check.status == PASS, check
    # read-only credentials may list too: the check asks for access, not for write rights
    ro = _credentials(tmp_path, seaweed.readonly_access_key, seaweed.readonly_secret_key)
    assert check_bucket(s3_config(seaweed.url, bucket, ro), TIMEOUT_S).status == PASS


def test_bucket_bad_credentials(seaweed: SeaweedS3, tmp_path: Path) -> None:
    bucket = seaweed.create_bucket("doctor")
    creds = _credentials(tmp_path, seaweed.access_key, "not-the-secret")
    check = check_bucket(s3_config(seaweed.url, bucket, creds), TIMEOUT_S)
    assert check.status == FAIL and "credentials" in check.fix, check


def test_bucket_missing(seaweed: SeaweedS3, tmp_path: Path) -> None:
    creds = _credentials(tmp_path, seaweed.access_key, seaweed.secret_key)
    check = check_bucket(s3_config(seaweed.url, "no-such-bucket-doctor", creds), TIMEOUT_S)
    assert check.status == FAIL and "does not exist" in check.summary, check


def test_bucket_unreachable(tmp_path: Path) -> None:
    creds = _credentials(tmp_path, "AKIAEXAMPLE", "secret")
    url = f"http://127.0.0.1:{free_port()}"
    check = check_bucket(s3_config(url, "doorbell", creds), TIMEOUT_S)
    assert check.status == FAIL and "unreachable" in check.summary, check
