"""Private brokers for ``scripts/fleet``: Mosquitto, RabbitMQ (MQTT plugin) and NATS (MQTT), each
started by us on free loopback ports with its own config and data directory, stopped by PID.

Usage::

    broker = make_broker("rabbitmq", tmp_dir)   # "mosquitto" | "rabbitmq" | "nats"
    broker.start()                              # returns once its MQTT port accepts TCP
    broker.url                                  # mqtt://127.0.0.1:<port>
    broker.stop(); broker.start()               # the outage: same ports, same data directory
    broker.close()                              # stop, and anything else it left (epmd)

Every broker keeps MQTT sessions and queued QoS 1 messages across a stop/start (Mosquitto with
``persistence``; RabbitMQ's durable queues for clean_session=false; NATS in JetStream), so the
fleet's subscriber, with a persistent session, is owed everything published while it was away.
The machine's own services (1883, 5672, 4222, epmd on 4369) are never touched: RabbitMQ runs as
its own Erlang node with its own epmd port, cookie (HOME) and Mnesia directory.

``FLEET_BROKER_DEBUG=1`` in the environment makes Mosquitto log every packet (``log_type all``);
``scripts/fleet --keep-logs DIR`` keeps each broker's directory for reading it.
"""

from __future__ import annotations

import abc
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Protocol

from tests.servers import Mosquitto, free_port, port_open

RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"  # the Debian wrapper would su to rabbitmq
BROKERS = ("mosquitto", "rabbitmq", "nats")


class Broker(Protocol):
    name: str
    port: int

    @property
    def url(self) -> str: ...

    def start(self, timeout: float = ...) -> None: ...

    def stop(self, timeout: float = ...) -> None: ...

    def close(self) -> None: ...

    def log_text(self) -> str: ...


class FleetMosquitto(Mosquitto):
    """tests.servers.Mosquitto, persistent, with no cap on messages queued for an offline session
    (the default 1000 would drop what 1,000 devices send while the subscriber reconnects)."""

    name = "mosquitto"

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, persistent=True)

    def _config(self) -> str:
        quiet = super()._config().replace("connection_messages true", "connection_messages false")
        # Mosquitto 2.0.11 with per_listener_settings restores persisted sessions without their
        # subscriptions until the client comes back (measured: devices reconnecting first got
        # PUBACK 0x10 "no matching subscribers" and their events never reached the subscriber)
        quiet = quiet.replace("per_listener_settings true\n", "")
        debug = "log_type all\n" if os.environ.get("FLEET_BROKER_DEBUG") else ""
        return quiet + "max_queued_messages 0\nmax_queued_bytes 0\n" + debug

    def close(self) -> None:
        self.stop()


class _Process(abc.ABC):
    """A broker process in its own process group, stopped with SIGTERM to that group; each
    broker says how it is started in ``_command``."""

    name = "broker"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.out_file = directory / "stdout.log"
        self.start_seconds: list[float] = []

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @abc.abstractmethod
    def _command(self) -> tuple[list[str], dict[str, str]]:
        """The broker's command line and environment."""

    def start(self, timeout: float = 120.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError(f"{self.name} is already running (pid {self.proc.pid})")
        began = time.monotonic()
        cmd, env = self._command()
        with self.out_file.open("ab") as out:
            self.proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True, cwd=self.directory)
        while not port_open(self.port):
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see "
                                   f"{self.out_file}:\n{self.log_text()[-3000:]}")
            if time.monotonic() - began > timeout:
                self.stop()
                raise TimeoutError(f"{self.name} did not listen on {self.port} within "
                                   f"{timeout:.0f} s; see {self.out_file}")
            time.sleep(0.1)  # polling the port: the broker has no readiness signal for us
        self.start_seconds.append(time.monotonic() - began)

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM to the group we started (a clean shutdown: data is flushed), SIGKILL if it
        does not end within ``timeout``; idempotent."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout)
        deadline = time.monotonic() + timeout  # the group's other members (beam under sh)
        while port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.1)

    def close(self) -> None:
        self.stop()

    def log_text(self) -> str:
        try:
            return self.out_file.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return "(no log)"


class RabbitMQ(_Process):
    """A separate RabbitMQ node (``fleet-<port>@localhost``) with only rabbitmq_mqtt enabled."""

    name = "rabbitmq"

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.amqp_port, self.dist_port, self.epmd_port = free_port(), free_port(), free_port()
        for sub in ("mnesia", "log", "home"):
            (directory / sub).mkdir(exist_ok=True)
        (directory / "enabled_plugins").write_text("[rabbitmq_mqtt].\n", encoding="utf-8")
        (directory / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.amqp_port}\n"
            f"mqtt.listeners.tcp.default = 127.0.0.1:{self.port}\n"
            "mqtt.allow_anonymous = true\n"
            "loopback_users = none\n"
            "log.file.level = warning\n", encoding="utf-8")

    def _command(self) -> tuple[list[str], dict[str, str]]:
        d = self.directory
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(d / "home"),
            "RABBITMQ_NODENAME": f"fleet-{self.port}@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.amqp_port), "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_PORT": str(self.epmd_port), "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_BASE": str(d), "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(d / "advanced.config"),
            "RABBITMQ_MNESIA_BASE": str(d / "mnesia"), "RABBITMQ_LOG_BASE": str(d / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(d / "rabbitmq.pid"),
        }
        return [RABBITMQ_SERVER], env

    def close(self) -> None:
        self.stop()
        # epmd daemonises on our private port; it is ours and holds no node any more
        subprocess.run(["epmd", "-port", str(self.epmd_port), "-kill"], capture_output=True,
                       check=False, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})

    def log_text(self) -> str:
        logs = sorted((self.directory / "log").glob("*.log"))
        return super().log_text() + "".join(p.read_text(errors="replace")[-5000:] for p in logs)


class Nats(_Process):
    """nats-server with JetStream (MQTT sessions live there) and the MQTT listener."""

    name = "nats"

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.client_port = free_port()
        (directory / "nats.conf").write_text(
            f'server_name: "fleet-{self.port}"\n'
            f"listen: 127.0.0.1:{self.client_port}\n"
            f'jetstream {{ store_dir: "{directory / "js"}" }}\n'
            f"mqtt {{ listen: 127.0.0.1:{self.port} }}\n", encoding="utf-8")

    def _command(self) -> tuple[list[str], dict[str, str]]:
        return ["nats-server", "-c", str(self.directory / "nats.conf")], dict(os.environ)


def make_broker(name: str, directory: Path) -> Broker:
    if name == "mosquitto":
        return FleetMosquitto(directory)
    if name == "rabbitmq":
        return RabbitMQ(directory)
    if name == "nats":
        return Nats(directory)
    raise ValueError(f"broker {name!r}: one of {', '.join(BROKERS)}")
