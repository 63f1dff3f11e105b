"""The data directory's layout: :class:`DataDir` names every file the device keeps there.

Each file name is spelled here and nowhere else; code asks a ``DataDir`` for the path::

    paths = DataDir(cfg.data_dir(opts.data_dir))           # or DataDir(root, runtime=...)
    db = DeviceDB(paths.device_db)
    outbox = Outbox(paths.outbox_db)
    status = StatusFile(paths)                             # writes paths.status_target

The names are the device's on-disk contract: a device upgraded to a newer doorward must find its
keys, databases and clips where the older one left them, so a name here never changes
(tests/unit/test_paths.py pins every one). A new file gets a new property here.

What lives where (all 0600 unless said otherwise; the directory itself is 0700):

* ``device.key``, ``setup.secret``: the device identity (Ed25519 key) and its setup code's secret;
* ``tls-p256.key``, ``tls-ed25519.key``: TLS client keys for a broker's CSR, made on demand;
* ``dev-owner.key``: the development owner's age identity (simulated sources before pairing);
* ``device.sqlite``: owners, consent, replay counters, the ledger, settings;
* ``outbox.sqlite``: every message and upload waiting to leave;
* ``index.sqlite``, ``clips/``, ``lock``: the clip store (its index, sealed files, daemon lock);
* ``status.json``: what the daemon is doing (a symlink into the runtime directory, if given);
* ``control.sock``: the local control socket of ``doorward press`` (a Unix socket).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

TLS_KEY_TYPES = ("p256", "ed25519")


@dataclass(frozen=True)
class DataDir:
    """The paths of one data directory ``root``. ``runtime``: systemd's ``$RUNTIME_DIRECTORY``
    (a tmpfs) for the files rewritten every second, so they never wear the SD card; None: they
    stay in ``root``. Pure: nothing is created or checked."""

    root: Path
    runtime: Path | None = None

    # ---- the device's identity and keys ---------------------------------------------------------

    @property
    def device_key(self) -> Path:
        return self.root / "device.key"

    @property
    def setup_secret(self) -> Path:
        return self.root / "setup.secret"

    def tls_key(self, key_type: str) -> Path:
        """The TLS client key of ``key_type`` (one of :data:`TLS_KEY_TYPES`)."""
        if key_type not in TLS_KEY_TYPES:
            raise ValueError(f"key type {key_type!r}: use one of {', '.join(TLS_KEY_TYPES)}")
        return self.root / f"tls-{key_type}.key"

    @property
    def dev_owner_key(self) -> Path:
        return self.root / "dev-owner.key"

    # ---- databases ----------------------------------------------------------------------------

    @property
    def device_db(self) -> Path:
        return self.root / "device.sqlite"

    @property
    def outbox_db(self) -> Path:
        return self.root / "outbox.sqlite"

    @property
    def index_db(self) -> Path:
        """The clip store's index."""
        return self.root / "index.sqlite"

    @property
    def databases(self) -> tuple[Path, ...]:
        """Every SQLite file, in the order ``doorward doctor`` checks them."""
        return (self.index_db, self.device_db, self.outbox_db)

    # ---- the clip store -----------------------------------------------------------------------

    @property
    def clips(self) -> Path:
        """The folder of sealed clips and snapshots (their names: agent.store.records)."""
        return self.root / "clips"

    @property
    def store_lock(self) -> Path:
        """Held (flock) by the daemon: one daemon per data directory."""
        return self.root / "lock"

    # ---- the running daemon -------------------------------------------------------------------

    @property
    def status(self) -> Path:
        """Where readers find status.json (a symlink to :attr:`status_target` with a runtime
        directory)."""
        return self.root / "status.json"

    @property
    def status_target(self) -> Path:
        """Where the daemon writes status.json: in the runtime directory if there is one."""
        return (self.runtime if self.runtime is not None else self.root) / self.status.name

    @property
    def control_socket(self) -> Path:
        return self.root / "control.sock"
