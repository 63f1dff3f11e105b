"""What the daemon opens before any device or network: the clip store (recovered), the device's
durable state, who clips are sealed to, and the status file.

Wiring (agent.app): ``local = open_local(data_dir, spec, limits=StoreLimits(...),
runtime_dir=...)``, first thing after the process is hardened.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from agent.camera.sources import SourceSpec
from agent.device.control_plane import DeviceState, open_device_state
from agent.paths import DataDir
from agent.recording.sealing import SealingPolicy, retire_dev_owner
from agent.runtime.status_file import StatusFile
from agent.store import ClipStore

log = logging.getLogger("doorward")


@dataclass(frozen=True)
class StoreLimits:
    """The ``[store]`` limits."""

    max_bytes: int
    retention_days: float
    min_free_bytes: int


@dataclass
class Local:
    """The store, the device's durable state, the sealing policy and the status file."""

    spec: SourceSpec
    data_dir: Path
    store: ClipStore
    device: DeviceState
    policy: SealingPolicy
    status: StatusFile


def open_local(data_dir: Path, spec: SourceSpec, *, limits: StoreLimits,
               runtime_dir: Path | None = None) -> Local:
    """Create ``data_dir`` (0700) if needed, open and recover the store, open the device state,
    retire a development owner a cut-short pairing left, and write the first status.
    ``runtime_dir``: where status.json lives under systemd (tmpfs: no SD-card wear)."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    store = ClipStore(data_dir, max_bytes=limits.max_bytes,
                      retention_days=limits.retention_days,
                      min_free_bytes=limits.min_free_bytes, repair_index=True)
    recovered = store.recover()  # logs what it recovered
    log.info("store %s ready (%d clips)", data_dir, len(store.list_clips()))
    device = open_device_state(data_dir)
    policy = SealingPolicy(data_dir, dev_owner=spec.dev_owner,
                           owner_recipients=device.consent.recipients)
    # pairing was cut short: the development owner goes
    if device.consent.owners() and DataDir(data_dir).dev_owner_key.exists():
        retire_dev_owner(data_dir, store, device.consent.recipients())
    policy.recipients()  # creates the development owner now, so the log says so at start
    (log.info if policy.mode != "not-recording" else log.warning)(policy.reason)
    status = StatusFile(data_dir, runtime_dir=runtime_dir)
    status.update(state="starting", source=str(spec), data_dir=str(data_dir),
                  device_id=device.identity.device_id, store_recovery=list(recovered.notes),
                  sealing=policy.mode, sealing_reason=policy.reason)
    status.flush(force=True)
    return Local(spec, data_dir, store, device, policy, status)
