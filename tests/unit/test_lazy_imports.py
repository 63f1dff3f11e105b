"""The daemon loads boto3 and paho only when a bucket or a broker is configured: together they
cost about 35 MB of RSS that a local-only doorbell (or `doorward analyze`) never needs."""

from __future__ import annotations

import subprocess
import sys


def test_the_daemon_modules_import_neither_boto3_nor_paho() -> None:
    code = ("import sys, agent.app, agent.cli, agent.delivery.queueing, agent.delivery.lanes, "
            "agent.device.control_plane, "
            "agent.delivery.outbox_worker, agent.owner.cli; agent.cli.build_parser(); "
            "print(sorted(m for m in ('boto3', 'botocore', 'paho') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_the_daemon_modules_leave_out_what_a_sim_or_file_run_never_uses() -> None:
    # gpiozero (real pins only), the renderer (a child process renders), importlib.metadata
    # (named pin factories only), the Pi camera's modules and uplink's in-memory test twins
    code = ("import sys, agent.app, agent.cli; agent.cli.build_parser(); "
            "print(sorted(m for m in ('gpiozero', 'agent.camera.sim.render', 'importlib.metadata', "
            "'agent.camera.picam', 'agent.recording.picam_encoder', 'uplink.loopback_mqtt', "
            "'uplink.memory_store') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_the_paho_free_and_boto3_free_halves_are_re_exported() -> None:
    from uplink import mqtt, mqtt_types, objectstore, s3

    assert mqtt.MqttSettings is mqtt_types.MqttSettings
    assert mqtt.InboundMessage is mqtt_types.InboundMessage
    assert s3.S3Settings is objectstore.S3Settings
    assert s3.ObjectStore is objectstore.ObjectStore


def test_the_face_loads_paho_and_boto3_only_when_asked() -> None:
    code = ("import sys, uplink\n"
            "def loaded(): return sorted(m for m in ('boto3', 'paho') if m in sys.modules)\n"
            "print(loaded()); uplink.MqttClient; print(loaded()); uplink.S3ObjectStore; "
            "print(loaded())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:3] == ["[]", "['paho']", "['boto3', 'paho']"], out.stdout


def test_the_face_exports_what_it_lists() -> None:
    import uplink
    from uplink import mqtt, s3

    assert uplink.MqttClient is mqtt.MqttClient and uplink.S3ObjectStore is s3.S3ObjectStore
    assert [n for n in uplink.__all__ if not hasattr(uplink, n)] == []
    assert len(set(uplink.__all__)) == len(uplink.__all__)
