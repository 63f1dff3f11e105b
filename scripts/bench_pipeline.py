"""Benchmarks of the whole pipeline (run through ``scripts/bench analyze|run``).

analyze: renders the 'visit' scene to a 1280x720 15 fps H.264 file once (cached in bench-out/), then
  times `doorward analyze` on it against PyAV decoding the same file alone with PyAV's defaults
  (``decode_only_s``, ``vs_decode``), and, stricter, with the cheaper decoder settings analyze
  chooses (``decode_like_analyze_s``: slice threading for a sliced stream, no deblocking; see
  agent/camera/file.py). Targets: >= 20x real time; ``vs_decode`` <= 1.3.
run: `doorward run --source sim:porch --realtime` at 1280x720 15 fps for 60 s of video, then
  encodes the same rendered frames with the same x264 settings alone in this process. Targets: no
  dropped frames; daemon CPU per second of video <= 1.5x x264 alone; peak RSS <= 150 MB.
  ``--source file:PATH`` runs a file instead (``--realtime --exit-at-eof``, to its end), and
  ``--source file`` the 40 s ``visit`` rendered once into bench-out/ (as ``analyze`` uses); a file
  run skips the x264-alone comparison. Peak RSS is ``ru_maxrss`` of the daemon (``os.wait4``);
  a ``sim:`` source renders, and a ``file:`` source decodes, in a child process of the daemon
  (agent/camera/child.py), whose peak (VmHWM, read just before the daemon is stopped) is given
  apart (``simulator_peak_rss_mb``, for both), with the sum. The daemon runs with
  ``PYTHONOPTIMIZE=2`` as the systemd unit runs it (``--optimize 0`` for plain ``python``).
  First the bytecode the daemon loads is compiled as ``scripts/install-pi`` compiles it
  (``compileall -o 2`` over the standard library, the venv and the project: see
  :func:`compile_as_installed`); without it, a machine with ``PYTHONDONTWRITEBYTECODE`` set (this
  one) compiles every module from source at each start, and the compiler's freed memory stays in
  the daemon's heap: 6 MB of peak RSS that no Pi has (``--from-source`` measures that state).
  ``--broker`` runs the daemon against a Mosquitto on loopback, as a device always runs.
  Before the run the page cache of the shared libraries is evicted (see _evict_library_cache;
  ``--keep-cache`` skips it); the end-of-run RSS is also given split into anonymous memory and
  mapped library pages.
  "Per second of video" is measured in the steady state: the daemon's CPU time (from
  /proc/PID/stat) between the status file reporting frame 45 (3 s in, imports and the
  simulator's set-up done) and the end, over the frames in between. ``ratio`` compares, in that
  same run and window, the daemon's process CPU with its encoder's (libx264's worker threads plus
  the loop's time in encode(): ``process_cpu_s`` and ``encoder_cpu_s`` in status.json, written
  together once a second), less the simulated camera's rendering (``source_cpu_s``: on a Pi the
  ISP makes the frames; ``ratio_with_simulator`` keeps it in). Since the renderer runs in a child
  process, ``process_cpu_s`` no longer holds it: ``source_cpu_s`` is only the daemon's reading of
  the child's frames, and the child's own CPU (``source_child_cpu_s``) is added for
  ``ratio_with_simulator`` and ``simulator_cpu_per_video_s``. A ``file:`` source is counted the
  same way: decoding the file is not the daemon's own work either (on a Pi the ISP makes the
  frames), so its child's CPU is ``source_child_cpu_s`` and the daemon's reading of its frames
  ``source_cpu_s``; before it ran in a child, ``ratio`` held the file's decoding (no
  ``source_cpu_s``), so file ratios before 2026-12-04 are not comparable.
  ``ratio_vs_x264_alone`` divides by the same frames encoded in this process instead (back to
  back, not paced at 15 fps), ``ratio_with_startup`` by the whole run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench-out"
DOORWARD = str(Path(sys.executable).parent / "doorward")


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, " \
           f"Python {platform.python_version()}"


def compile_as_installed(optimize: int) -> dict[str, object]:
    """Write the ``.pyc`` files (``.opt-2.pyc`` for ``optimize`` 2) the daemon will load, for the
    standard library, this venv's packages and the project, as ``scripts/install-pi`` does on a
    Pi; returns what was done for the report. Files that do not compile (tests written for other
    Pythons in some packages) are left to import time, as there."""
    paths = {sysconfig.get_paths()[k] for k in ("stdlib", "purelib", "platlib")}
    # a venv with --system-site-packages (the Pi's) also loads apt's dist-packages
    paths |= {p for p in sys.path if p.endswith(("-packages", "-packages/")) and Path(p).is_dir()}
    paths |= {str(ROOT / pkg) for pkg in ("agent", "motion", "uplink")}
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0", "-o", str(optimize),
                    *sorted(paths)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=False)
    return {"bytecode": f"compiled as installed (compileall -o {optimize})",
            "compile_s": round(time.monotonic() - started, 1)}


def rendered_visit() -> Path:
    OUT.mkdir(exist_ok=True)
    video = OUT / "visit-720p.mp4"
    if not video.exists():
        print("rendering sim:visit at 1280x720 (once)...", flush=True)
        subprocess.run([DOORWARD, "scenes", "render", "visit", "-o", str(video)], check=True)
    return video


def decode_only(video: Path, like_analyze: bool) -> float:
    """Seconds to decode ``video`` with PyAV alone, touching each frame's luma plane.

    ``like_analyze=False``: PyAV's defaults, as anyone would time it. ``True``: with the decoder
    settings analyze picks (its threading choice and options), the floor analyze can reach.
    """
    import av

    from agent.camera.file import ANALYSIS_DECODER_OPTIONS, decoded_frames

    start = time.perf_counter()
    with av.open(str(video)) as c:
        stream = c.streams.video[0]
        if like_analyze:
            stream.codec_context.options = ANALYSIS_DECODER_OPTIONS
        frames = decoded_frames(c, stream) if like_analyze else c.decode(stream)
        for frame in frames:
            _ = frame.planes[0]  # touch the luma plane, as analyze does
    return time.perf_counter() - start


def bench_analyze(repeat: int) -> dict[str, object]:
    video = rendered_visit()
    import cv2

    from agent.config import Config
    from agent.tools.analyze import analyze
    plain, alike, analyze_times = [], [], []
    for _ in range(repeat):
        plain.append(decode_only(video, like_analyze=False))
        alike.append(decode_only(video, like_analyze=True))
        doc = analyze(Config(), str(video))
        analyze_times.append(float(doc["elapsed_s"]))  # type: ignore[arg-type]
    seconds = float(doc["seconds"])  # type: ignore[arg-type]
    best_a, best_p, best_d = min(analyze_times), min(plain), min(alike)
    res = {
        "video": f"{video.name}: {doc['frames']} frames, {seconds:.1f} s, 1280x720 15 fps",
        "analyze_s": round(best_a, 3),
        "decode_only_s": round(best_p, 3),
        "realtime_factor": round(seconds / best_a, 1),
        "vs_decode": round(best_a / best_p, 3),
        # The stricter figure: against decoding with analyze's own, cheaper decoder settings.
        "decode_like_analyze_s": round(best_d, 3),
        "vs_decode_like_analyze": round(best_a / best_d, 3),
        "cv2_threads": cv2.getNumThreads(),
        "targets": {"realtime_factor": ">= 20", "vs_decode": "<= 1.3"},
    }
    res["pass"] = res["realtime_factor"] >= 20 and res["vs_decode"] <= 1.3  # type: ignore[operator]
    return res


def _daemon_run(seconds: float, data: Path, source: str, optimize: int,
                broker: str | None = None) -> dict[str, float]:
    is_file = source.startswith("file:")
    cmd = [DOORWARD, "run", "--source", source, "--realtime", "--data-dir", str(data)]
    cmd += ["--broker", broker] if broker else []
    env = {**os.environ, "PYTHONOPTIMIZE": str(optimize)} if optimize else None
    proc = subprocess.Popen(cmd + (["--exit-at-eof"] if is_file else []),
                            stderr=subprocess.PIPE, text=True, env=env)
    status = data / "status.json"
    target = 1 << 30 if is_file else int(seconds * 15)  # a file: to its end
    deadline = time.monotonic() + seconds * 2 + 30
    steady: tuple[int, float] | None = None  # (frames, CPU seconds) once past start-up
    steady_doc: dict[str, float] | None = None
    frames, doc = 0, {}
    mem, child_hwm, cpu_now = {"RssAnon": 0.0, "RssFile": 0.0}, 0.0, 0.0
    exited: tuple[int, int, resource.struct_rusage] | None = None  # (pid, status, usage)
    while time.monotonic() < deadline:
        try:
            doc = json.loads(status.read_text())
            frames = int(doc.get("frames", 0))
        except (OSError, ValueError):
            frames = 0
        if steady is None and frames >= WARMUP_FRAMES:
            steady = (frames, _cpu_s(proc.pid))
        if steady_doc is None and frames >= WARMUP_FRAMES and "encoder_cpu_s" in doc:
            steady_doc = doc
        if frames >= target:
            break
        done = os.wait4(proc.pid, os.WNOHANG)  # reaps it with its rusage (not proc.poll())
        if done[0]:
            exited = done
            break
        sample = _rss_split_mb(proc.pid)
        if sample["RssAnon"] > 0:  # 0: it exited between wait4 and here (a zombie)
            mem, child_hwm = sample, max(child_hwm, _children_hwm_mb(proc.pid))
            cpu_now = _cpu_s(proc.pid)
        time.sleep(0.2)
    # a file's daemon exits at the end: its last sample before that stands for the end
    end, end_doc = (frames, cpu_now), doc
    if exited is None:
        mem, child_hwm = _rss_split_mb(proc.pid), _children_hwm_mb(proc.pid)
        end = (frames, _cpu_s(proc.pid))
        proc.send_signal(signal.SIGTERM)
        exited = os.wait4(proc.pid, 0)
    _, status_code, usage = exited
    proc.returncode = code = os.waitstatus_to_exitcode(status_code)
    err = proc.stderr.read() if proc.stderr else ""
    st = json.loads(status.read_text())
    if code != 0:
        raise SystemExit(f"daemon failed ({code}):\n{err}")
    if steady is None or steady_doc is None:
        raise SystemExit("the daemon never got past start-up: see its log")
    return {"frames": st["frames"], "dropped": st["dropped_frames"], "events": st["events"],
            "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024,
            "child_peak_rss_mb": child_hwm,
            "rss_anon_mb": mem["RssAnon"], "rss_file_mb": mem["RssFile"],
            "steady_frames": end[0] - steady[0], "steady_cpu_s": end[1] - steady[1],
            # the same run, as the daemon measured itself (status.json, written together)
            "run_process_cpu_s": end_doc["process_cpu_s"] - steady_doc["process_cpu_s"],
            "run_encoder_cpu_s": end_doc["encoder_cpu_s"] - steady_doc["encoder_cpu_s"],
            "run_source_cpu_s": (end_doc.get("source_cpu_s", 0.0)
                                 - steady_doc.get("source_cpu_s", 0.0)),
            # the renderer's child process (not in process_cpu_s, so not subtracted from it)
            "run_child_cpu_s": (end_doc.get("source_child_cpu_s", 0.0)
                                    - steady_doc.get("source_child_cpu_s", 0.0))}


WARMUP_FRAMES = 45


def _rss_split_mb(pid: int) -> dict[str, float]:
    """RssAnon and RssFile of a live process, in MB (/proc/PID/status)."""
    out = {"RssAnon": 0.0, "RssFile": 0.0}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in out:
            out[key] = int(value.split()[0]) / 1024
    return out


def _children_hwm_mb(pid: int) -> float:
    """Summed peak RSS (VmHWM) of a live process's children (the simulator's renderer), in MB."""
    total = 0.0
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids = (task / "children").read_text().split()
        except OSError:
            continue
        for kid in kids:
            try:
                for line in Path(f"/proc/{kid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1]) / 1024
            except OSError:
                continue
    return total


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process, all threads (fields 14, 15 of
    /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _encode_alone(frames: int) -> float:
    """CPU seconds x264 alone needs for the same rendered frames (rendered before timing)."""
    from agent.camera.sim import SimCamera, get_scene
    from agent.config import RecordingConfig
    from agent.recording.encoder import X264Encoder

    cam = SimCamera(get_scene("porch"), width=1280, height=720, fps=15)
    batch = []
    with cam:
        for f in cam.frames():
            batch.append(f.main.copy())
            if len(batch) >= 300:
                break
    rec = RecordingConfig()  # the daemon's default settings: preset, CRF and bit-rate cap
    enc = X264Encoder(1280, 720, 15.0, preset=rec.preset, crf=rec.crf,
                      bitrate_kbps=rec.bitrate_kbps)
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    for i in range(frames):
        enc.encode(batch[i % len(batch)], i / 15)
    enc.flush()
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    return (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def _evict_library_cache() -> int:
    """Drop the page cache of the shared libraries the daemon maps; returns how many files.

    Peak RSS counts the library pages a process maps. A freshly installed virtualenv's libraries
    are in the page cache as large folios (written moments ago), and mapping them brings whole
    folios in: 15-25 MB more RSS than when the same libraries are read from storage, as on a
    device whose daemon starts at boot. ``posix_fadvise(DONTNEED)`` evicts just these files'
    clean, unmapped pages (no root needed, nothing else touched), so the figure does not depend on
    how recently ``pip install`` ran. ``--keep-cache`` skips this.
    """
    roots = {Path(sys.prefix), Path(sys.base_prefix) / "lib", Path("/usr/lib")}
    count = 0
    for root in roots:
        for path in root.rglob("*.so*"):
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                count += 1
            finally:
                os.close(fd)
    return count


def bench_run(seconds: float, keep_cache: bool, source: str, optimize: int = 2,
              from_source: bool = False, broker: bool = False) -> dict[str, object]:
    if source == "file":
        source = f"file:{rendered_visit()}"
    compiled = {"bytecode": "from source if not cached"} if from_source \
        else compile_as_installed(optimize)
    evicted = 0 if keep_cache else _evict_library_cache()
    with tempfile.TemporaryDirectory() as tmp, _broker(Path(tmp), broker) as url:
        d = _daemon_run(seconds, Path(tmp) / "data", source, optimize, url)
    video_s = d["frames"] / 15
    is_file = source.startswith("file:")
    x264_cpu = float("nan") if is_file else _encode_alone(int(d["frames"]))
    x264_per_s = x264_cpu / video_s
    steady_per_s = d["steady_cpu_s"] / (d["steady_frames"] / 15)
    res = {
        "source": source, "cache": "warm (kept)" if keep_cache else "cold (evicted)",
        "python_optimize": optimize, **compiled, "broker": bool(broker),
        "packages": packages(),
        "video_s": round(video_s, 1), "frames": int(d["frames"]), "dropped": int(d["dropped"]),
        "events": int(d["events"]),
        "daemon_cpu_per_video_s": round(steady_per_s, 3),
        "daemon_cpu_per_video_s_with_startup": round(d["cpu_s"] / video_s, 3),
        "x264_alone_cpu_per_video_s": round(x264_per_s, 3),
        # the measure: the daemon's CPU over its encoder's CPU, both in the same run; the
        # simulator's rendering (a camera's ISP on a Pi) is counted apart, as in scripts/bench idle
        "ratio": round((d["run_process_cpu_s"] - d["run_source_cpu_s"])
                       / d["run_encoder_cpu_s"], 2),
        "ratio_with_simulator": round((d["run_process_cpu_s"] + d["run_child_cpu_s"])
                                      / d["run_encoder_cpu_s"], 2),
        "simulator_cpu_per_video_s": round((d["run_source_cpu_s"] + d["run_child_cpu_s"])
                                           / (d["steady_frames"] / 15), 3),
        "ratio_vs_x264_alone": round(steady_per_s / x264_per_s, 2),
        "ratio_with_startup": round(d["cpu_s"] / x264_cpu, 2),
        "peak_rss_mb": round(d["peak_rss_mb"], 1),
        # the simulator's renderer, a child of the daemon (none on a Pi), and the two together
        "simulator_peak_rss_mb": round(d["child_peak_rss_mb"], 1),
        "peak_rss_with_simulator_mb": round(d["peak_rss_mb"] + d["child_peak_rss_mb"], 1),
        "rss_anon_mb": round(d["rss_anon_mb"], 1),  # at the end: the daemon's own memory
        "rss_file_mb": round(d["rss_file_mb"], 1),  # at the end: mapped library pages
        "library_cache_evicted_files": evicted,
        "targets": {"dropped": "0", "ratio": "<= 1.5", "peak_rss_mb": "<= 150"},
    }
    if is_file:  # no x264-alone run: NaN is not JSON
        for key in ("x264_alone_cpu_per_video_s", "ratio_vs_x264_alone", "ratio_with_startup"):
            res.pop(key)
    res["pass"] = (res["dropped"] == 0 and res["ratio"] <= 1.5  # type: ignore[operator]
                   and res["peak_rss_mb"] <= 150)  # type: ignore[operator]
    return res


def packages() -> str:
    """The versions that set most of the memory: they differ between a fresh pip install and a
    Pi's (``--pi-packages``)."""
    import av
    import cv2
    import numpy

    where = "apt" if "dist-packages" in str(cv2.__file__) else "pip"
    return f"OpenCV {cv2.__version__} ({where}), NumPy {numpy.__version__}, PyAV {av.__version__}"


@contextlib.contextmanager
def _broker(tmp: Path, wanted: bool) -> Iterator[str | None]:
    """A Mosquitto on loopback for the run (tests/servers.py), or None."""
    if not wanted:
        yield None
        return
    if str(ROOT) not in sys.path:  # tests/servers.py, when run as scripts/bench_pipeline.py
        sys.path.insert(0, str(ROOT))
    from tests.servers import Mosquitto

    mosq = Mosquitto(tmp / "mosquitto")
    mosq.start()
    try:
        yield mosq.url
    finally:
        mosq.stop()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["analyze", "run"])
    ap.add_argument("--seconds", type=float, default=60.0, help="run: seconds of video")
    ap.add_argument("--repeat", type=int, default=3, help="analyze: best of N")
    ap.add_argument("--keep-cache", action="store_true",
                    help="run: leave the libraries' page cache as it is (see _evict_library_cache)")
    ap.add_argument("--optimize", type=int, default=2, choices=[0, 1, 2],
                    help="run: PYTHONOPTIMIZE for the daemon (default 2, python -OO, as "
                         "systemd/doorward.service runs it)")
    ap.add_argument("--source", default="sim:porch",
                    help="run: sim:SCENE, file:PATH, or file (the 40 s visit, rendered once into "
                         "bench-out/)")
    ap.add_argument("--from-source", action="store_true",
                    help="run: do not compile the bytecode first (each start compiles what has "
                         "no .pyc, as with PYTHONDONTWRITEBYTECODE; no Pi install runs so)")
    ap.add_argument("--broker", action="store_true",
                    help="run: against a Mosquitto on loopback (as a device runs)")
    ap.add_argument("--pi-packages", action="store_true",
                    help="run: with the Pi's package versions (scripts/pi-pins.txt, in .venv-pi: "
                         "apt's NumPy and cryptography; scripts/bench picks that Python)")
    args = ap.parse_args()
    if args.what == "analyze":
        res = bench_analyze(args.repeat)
    else:
        res = bench_run(args.seconds, args.keep_cache, args.source, args.optimize,
                        args.from_source, args.broker)
    print(json.dumps({"bench": args.what, "machine": machine(), **res}, indent=2))
    return 0 if res["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
