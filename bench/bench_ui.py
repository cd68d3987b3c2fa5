"""The web UI end to end in a real browser: `avse ui` + Debian's chromium (Playwright), one enhancement, time per stage.

Starts ``avse ui`` on a free localhost port, opens it in chromium, uploads a
short synthetic talking-face clip with noisy sound (a rendered scene of a tiny
synthetic corpus, made here and repeated to ``--seconds``; or ``--video
FILE``), waits for the faces, clicks
Run ``--runs`` times (the first run loads the model) and reads back the time
the browser waited for each step and the stage times the page shows (front
end, loading the model, model, writing, figures, DNSMOS when its models are
in ../shared/models/dnsmos or given). Writes
bench/results/ui.json and a screenshot of the page with its results,
bench/results/ui.png.

    python bench/bench_ui.py [--video talk.mp4 | --seconds 12] [--runs 2] [--task "enhance: audio-visual (av)"] [--dnsmos DIR]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, save  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DNSMOS = Path(__file__).resolve().parents[2] / "shared" / "models" / "dnsmos"  # used in place when there


def make_clip(folder: Path, seconds: float) -> Path:
    """A noisy talking-face clip: the first dev scene of a tiny synthetic corpus (face video + mixture), repeated to ``seconds``."""
    from avse.audio.io import load_audio
    from avse.config import synth_config
    from avse.data.render import render_scenes
    from avse.data.scenes import build_scenes, write_scenes
    from avse.data.synth import synthesize_corpus
    from avse.video.io import read_video, write_video

    root = folder / "corpus"
    synthesize_corpus(root, synth_config("tiny"), jobs=1, progress=False)
    write_scenes(root, "dev", build_scenes(root, "dev", n_scenes=2, seed=0))
    render_scenes(root, "dev", jobs=1, progress=False)
    scene = sorted((root / "dev" / "scenes").glob("*_silent.mp4"))[0]
    mixed, _ = load_audio(scene.with_name(scene.name.replace("_silent.mp4", "_mixed.wav")), 16000)
    frames = read_video(scene, with_audio=False).frames  # [N, H, W, 3]
    n = min(len(frames), len(mixed) // 640)
    reps = max(1, int(np.ceil(seconds * 25 / n)))
    path = folder / "talk.mp4"
    write_video(path, np.concatenate([frames[:n]] * reps), audio=np.concatenate([mixed[: n * 640]] * reps))
    return path


def start_server(port: int, dnsmos: Path | None) -> subprocess.Popen:
    """`avse ui --port PORT [--dnsmos DIR]` in a child process, returned once the page answers."""
    extra = ["--dnsmos", str(dnsmos)] if dnsmos else []
    proc = subprocess.Popen([sys.executable, "-m", "avse.cli", "ui", "--port", str(port), *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"avse ui did not start: {proc.communicate()[1][-2000:]}")


def main() -> None:
    """Make or take the clip, start the server, drive chromium, print and save the numbers."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", type=Path, help="the clip to upload (default: a synthetic one made here)")
    ap.add_argument("--runs", type=int, default=2, help="Run clicks on the same upload (default: %(default)s)")
    ap.add_argument("--task", default="enhance: audio-visual (av)")
    ap.add_argument("--seconds", type=float, default=12.0, help="length of the synthetic clip (default: %(default)s)")
    ap.add_argument("--dnsmos", type=Path, default=DNSMOS if (DNSMOS / "sig_bak_ovr.onnx").is_file() else None,
                    help="DNSMOS model folder (default: ../shared/models/dnsmos when there)")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    from avse.audio.io import load_audio

    def stop(signum: int, frame: object) -> None:
        """SIGTERM: stop like Ctrl-C (the finally clause cleans up)."""
        raise KeyboardInterrupt  # so that the server and the temporary folder go too

    signal.signal(signal.SIGTERM, stop)
    tmp = Path(tempfile.mkdtemp(prefix="bench-ui-"))
    proc = None
    try:
        clip = args.video or make_clip(tmp, args.seconds)
        seconds = load_audio(clip, 16000)[0].shape[0] / 16000
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        t0 = time.perf_counter()
        proc = start_server(port, args.dnsmos)
        server_start = time.perf_counter() - t0
        print(f"avse ui answered after {server_start:.1f} s", flush=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            t0 = time.perf_counter()
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector("#upload input[type=file]", state="attached")
            page_load = time.perf_counter() - t0
            print(f"page loaded in {page_load:.1f} s; uploading {clip.name}", flush=True)
            t0 = time.perf_counter()
            page.locator("#upload input[type=file]").set_input_files(str(clip))
            page.wait_for_function("document.querySelector('#status').innerText.match(/track\\(s\\) found|model will be used|Could not/)",
                                   timeout=300_000)
            to_faces = time.perf_counter() - t0
            status = page.inner_text("#status").split("\n\n")[-1]  # without a progress line still fading out
            print(f"after {to_faces:.1f} s: {status}", flush=True)
            page.locator("#task label", has_text=args.task).click()
            runs = []
            for i in range(args.runs):
                t0 = time.perf_counter()
                page.click("#run")
                page.wait_for_function("t => document.querySelector('#status').innerText.includes(t)", arg=f"Done (run {i + 1}):",
                                       timeout=600_000)
                wall = time.perf_counter() - t0
                facts = page.inner_text("#facts")
                stages = {k.strip(): float(v) for k, v in re.findall(r"([a-zA-Z][a-zA-Z ]*?) (\d+\.\d+) s", facts.split("Stages:")[1].split("(")[0])}
                runs.append({"browser_wait_s": round(wall, 2), "stages_s": stages, "status": page.inner_text("#status").split("\n\n")[-1]})
            mode = next((ln for ln in facts.splitlines() if ln.startswith("Mode:")), "")
            offset = next((ln for ln in facts.splitlines() if ln.startswith("A/V offset")), "")
            RESULTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(RESULTS / "ui.png"), full_page=True)
            browser.close()
        for i, r in enumerate(runs):
            print(f"run {i + 1}: browser waited {r['browser_wait_s']:.2f} s; "
                  + ", ".join(f"{k} {v:.2f} s" for k, v in r["stages_s"].items()))
        save("ui", {
            "clip": {"file": clip.name, "seconds": round(seconds, 2), "synthetic": args.video is None},
            "task": args.task,
            "dnsmos": args.dnsmos is not None,
            "server_start_s": round(server_start, 2),
            "page_load_s": round(page_load, 2),
            "upload_to_faces_s": round(to_faces, 2),
            "after_upload": status,
            "runs": runs,
            "mode": mode,
            "av_offset": offset,
            "screenshot": str((RESULTS / "ui.png").relative_to(RESULTS.parent.parent)),
            "chromium": subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True).stdout.strip(),
        })
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
