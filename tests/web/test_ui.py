"""avse ui: the pieces (limits, path safety, messages, clean-up, live engine) fast; the real server in Debian's chromium slow."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from avse.config import DEFAULT_SHIFTS
from avse.errors import ConfigError, MediaError
from avse.web.session import UiConfig, WorkArea, accept_upload, exposure_warning, inside, is_loopback, user_message

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DNSMOS = Path(__file__).resolve().parents[3] / "shared" / "models" / "dnsmos"  # used in place when there; never copied
HAS_DNSMOS = (DNSMOS / "sig_bak_ovr.onnx").is_file()


def _wav(path: Path, seconds: float, sr: int = 16000) -> Path:
    from avse.audio.io import save_wav

    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2 + 0.05 * rng.standard_normal(t.shape)
    save_wav(path, x.astype(np.float32), sr)
    return path


@pytest.fixture()
def area(tmp_path) -> WorkArea:
    return WorkArea(tmp_path / "work")


def _staged(area: WorkArea, src: Path, name: str | None = None) -> Path:
    """A file where the web server puts uploads (the work folder, outside the sessions)."""
    folder = area.root / "upload123"
    folder.mkdir(exist_ok=True)
    dst = folder / (name or src.name)
    shutil.copyfile(src, dst)
    return dst


# ---------------------------------------------------------------------------------------------
# settings and exposure
# ---------------------------------------------------------------------------------------------


def test_config_refuses_impossible_limits():
    for bad in ({"port": 0}, {"port": 70000}, {"max_upload_mb": 0}, {"max_seconds": -1}, {"queue_size": 0}):
        with pytest.raises(ConfigError):
            UiConfig(**bad)
    assert UiConfig().host == "127.0.0.1" and not UiConfig().share
    assert UiConfig(max_upload_mb=2).max_upload_bytes == 2 * 1024 * 1024


def test_warning_only_when_reachable_beyond_this_machine():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1") and is_loopback("127.0.1.1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4") and not is_loopback("example.org")
    assert exposure_warning(UiConfig()) is None
    assert "0.0.0.0:8000" in exposure_warning(UiConfig(host="0.0.0.0", port=8000))
    assert "public link" in exposure_warning(UiConfig(share=True))


def test_cli_ui_defaults_are_safe():
    from avse.cli import build_parser

    args = build_parser().parse_args(["ui"])
    assert (args.host, args.port, args.share) == ("127.0.0.1", 7860, False)
    assert args.max_upload_mb > 0 and args.max_seconds > 0
    args = build_parser().parse_args(["ui", "--host", "0.0.0.0", "--port", "9000", "--max-upload-mb", "5", "--max-seconds", "20"])
    assert (args.host, args.port, args.max_upload_mb, args.max_seconds) == ("0.0.0.0", 9000, 5.0, 20.0)


def test_cli_ui_bad_limit_is_one_line(capsys):
    from avse.cli import main

    assert main(["ui", "--max-seconds", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("avse: error: ") and "duration limit" in err and "\n" not in err


def test_serve_warns_beyond_this_machine_and_removes_its_work_folder(tmp_path, monkeypatch, capsys):
    gr = pytest.importorskip("gradio")
    from avse.web import app

    seen = {}

    def fake_launch(self, **kwargs):  # no socket: what serve asks of Gradio is recorded instead
        seen.update(kwargs, work=Path(os.environ["GRADIO_TEMP_DIR"]))
        assert seen["work"].is_dir()

    monkeypatch.setattr(gr.Blocks, "launch", fake_launch)
    monkeypatch.delenv("GRADIO_TEMP_DIR", raising=False)  # serve sets it: put back after the test
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    app.serve(UiConfig(host="0.0.0.0", port=8123, max_upload_mb=3))
    err = capsys.readouterr().err
    assert err.startswith("avse: warning: listening on 0.0.0.0:8123") and err.count("\n") == 1
    assert seen["server_name"] == "0.0.0.0" and seen["server_port"] == 8123 and seen["share"] is False
    assert seen["max_file_size"] == 3 * 1024 * 1024
    assert seen["work"].parent == tmp_path and not seen["work"].exists()  # removed when the server stopped
    app.serve(UiConfig())
    assert capsys.readouterr().err == ""  # 127.0.0.1: no warning
    assert seen["server_name"] == "127.0.0.1" and seen["share"] is False


# ---------------------------------------------------------------------------------------------
# uploads: path safety, size and duration limits, messages
# ---------------------------------------------------------------------------------------------


def test_good_upload_is_moved_into_the_session(area, tmp_path):
    src = _staged(area, _wav(tmp_path / "voice.wav", 1.5))
    session = area.folder("s1")
    path, video, seconds = accept_upload(src, area.root, session, UiConfig(), blocked=area.sessions)
    assert path == session / "input.wav" and path.is_file() and not src.exists()
    assert not video and seconds == pytest.approx(1.5, abs=0.01)


def test_a_path_from_outside_the_upload_folder_is_never_opened(area, tmp_path):
    outside = _wav(tmp_path / "secret.wav", 1.0)
    with pytest.raises(ConfigError, match="did not come through the upload"):
        accept_upload(outside, area.root, area.folder("s1"), UiConfig(), blocked=area.sessions)
    assert outside.is_file()  # untouched
    # nor through a link inside the upload folder, nor another session's files
    link = area.root / "link.wav"
    link.symlink_to(outside)
    with pytest.raises(ConfigError, match="did not come through the upload"):
        accept_upload(link, area.root, area.folder("s1"), UiConfig(), blocked=area.sessions)
    other = _wav(area.folder("s2") / "input.wav", 1.0)
    with pytest.raises(ConfigError, match="did not come through the upload"):
        accept_upload(other, area.root, area.folder("s1"), UiConfig(), blocked=area.sessions)
    assert outside.is_file() and other.is_file()
    assert inside(area.folder("s1"), area.root) and not inside(tmp_path, area.root)


def test_size_and_duration_limits(area, tmp_path):
    session = area.folder("s1")
    big = _staged(area, _wav(tmp_path / "long.wav", 4.0))  # 128 kB
    with pytest.raises(ConfigError, match=r"long\.wav: 0\.1 MB is more than the limit of 0\.05 MB"):
        accept_upload(big, area.root, session, UiConfig(max_upload_mb=0.05), blocked=area.sessions)
    with pytest.raises(ConfigError, match=r"long\.wav: 4\.0 s is longer than the limit of 3 s"):
        accept_upload(big, area.root, session, UiConfig(max_seconds=3), blocked=area.sessions)
    assert list(session.iterdir()) == []  # nothing of a refused upload stays


def test_bad_files_give_one_line_naming_the_upload_only(area, tmp_path):
    session = area.folder("s1")
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is not a video\n" * 50)
    with pytest.raises(MediaError) as err:
        accept_upload(_staged(area, fake), area.root, session, UiConfig(), blocked=area.sessions)
    msg = user_message(err.value)
    assert msg.startswith("notes.mp4: ") and str(area.root) not in msg and "\n" not in msg
    txt = tmp_path / "notes.txt"
    txt.write_text("hello")
    with pytest.raises(ConfigError, match=r"notes\.txt: not a video or audio file"):
        accept_upload(_staged(area, txt), area.root, session, UiConfig(), blocked=area.sessions)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(MediaError, match="empty.wav: empty file"):
        accept_upload(_staged(area, empty), area.root, session, UiConfig(), blocked=area.sessions)
    assert list(session.iterdir()) == []


def test_user_message_hides_server_paths_and_tracebacks(tmp_path):
    err = MediaError(tmp_path / "sessions" / "x" / "input.mp4", "unreadable media")
    assert user_message(err, {str(tmp_path / "sessions" / "x" / "input.mp4"): "talk.mp4"}) == "talk.mp4: unreadable media"
    line = user_message(ValueError("bad shape\nmore detail"))
    assert line == "avse could not process this (ValueError: bad shape)"


# ---------------------------------------------------------------------------------------------
# work folders
# ---------------------------------------------------------------------------------------------


def test_session_folders_are_cleaned_up(tmp_path):
    area = WorkArea(tmp_path / "work")
    a = area.folder("abc_1")
    (a / "input.wav").write_bytes(b"x")
    assert area.folder("abc_1") == a and a.parent == area.sessions
    for bad in ("../escape", "a/b", "", ".", "x" * 65):
        with pytest.raises(ConfigError):
            area.folder(bad)
        assert not area.drop(bad)
    assert area.drop("abc_1") and not a.exists() and not area.drop("abc_1")
    area.close()
    assert not area.root.exists()


def test_ui_server_session_end_removes_its_folder(tmp_path):
    pytest.importorskip("gradio")
    from avse.web.app import UiServer

    area = WorkArea(tmp_path / "work")
    server = UiServer(UiConfig(), area)
    src = _staged(area, _wav(tmp_path / "voice.wav", 1.0))
    state = server.take_upload("sess1", str(src))
    assert state.path is not None and state.path.is_file() and state.name == "voice.wav"
    server.end("sess1")
    assert not (area.sessions / "sess1").exists() and "sess1" not in server.sessions


def test_demo_clips_are_picked_by_name_only(tmp_path, monkeypatch):
    pytest.importorskip("gradio")
    from avse.video.io import write_video
    from avse.web.app import UiServer

    clips = tmp_path / "clips"
    clips.mkdir()
    frames = np.full((25, 64, 64, 3), 128, np.uint8)
    write_video(clips / "noisy_S00001.mp4", frames, audio=np.zeros(16000, np.float32) + 0.01)
    area = WorkArea(tmp_path / "work")
    server = UiServer(UiConfig(examples=str(clips)), area)
    assert list(server.examples) == ["noisy_S00001.mp4"]
    state = server.take_example("s1", "noisy_S00001.mp4")
    assert state.path == area.sessions / "s1" / "input.mp4" and state.analysis.video
    assert (clips / "noisy_S00001.mp4").is_file()  # the server's clip is copied, never moved
    for bad in ("../clips/noisy_S00001.mp4", str(clips / "noisy_S00001.mp4"), "other.mp4"):
        with pytest.raises(ConfigError, match="no demo clip named"):
            server.take_example("s1", bad)
    with pytest.raises(ConfigError, match="no such folder"):
        UiServer(UiConfig(examples=str(tmp_path / "missing")), area)
    # without --examples: avse demo's folder in the working directory, its noisy inputs only
    demo = tmp_path / "cwd" / "avse_demo"
    demo.mkdir(parents=True)
    write_video(demo / "noisy_S00002.mp4", frames, audio=np.zeros(16000, np.float32) + 0.01)
    write_video(demo / "enhanced_S00002.mp4", frames, audio=np.zeros(16000, np.float32) + 0.01)
    monkeypatch.chdir(tmp_path / "cwd")
    assert list(UiServer(UiConfig(), area).examples) == ["noisy_S00002.mp4"]
    monkeypatch.chdir(tmp_path)
    assert UiServer(UiConfig(), area).examples == {}


def test_jobs_share_one_engine_slot_and_nothing_is_open_to_the_api(tmp_path):
    pytest.importorskip("gradio")
    from avse.web.app import build_app

    area = WorkArea(tmp_path / "work")
    demo = build_app(UiConfig(), area)
    fns = {fn.name: fn for fn in demo.fns.values()}
    for name in ("on_upload", "on_example", "on_run"):  # everything that runs the front end or a model
        assert (fns[name].concurrency_id, fns[name].concurrency_limit) == ("engine", 1), name
    assert fns["on_live"].concurrency_limit == 2
    assert all(fn.api_visibility == "private" for fn in fns.values())
    assert demo.get_api_info() == {"named_endpoints": {}, "unnamed_endpoints": {}}


# ---------------------------------------------------------------------------------------------
# the engine side: progress callbacks, a whole job on an audio file, the live tab's engine
# ---------------------------------------------------------------------------------------------


def test_run_chunked_reports_every_chunk_to_a_callback():
    from avse.inference import InferenceConfig, run_chunked

    calls = []
    x = np.random.default_rng(0).standard_normal(16000 * 5).astype(np.float32)
    out, n = run_chunked(lambda a, v: a[None] * 0.5, x, None, InferenceConfig(chunk_seconds=2.0, overlap_seconds=0.4),
                         progress=lambda done, total: calls.append((done, total)))
    assert n == 3 and calls == [(0, 3), (1, 3), (2, 3), (3, 3)]
    np.testing.assert_allclose(out[0], x, atol=1e-5)  # the gain matching undoes the 0.5


def test_job_on_an_audio_file_reports_its_stages(tmp_path):
    from avse.audio.io import load_audio
    from avse.web.jobs import TASKS, Analysis, Engine, run_job

    wav = _wav(tmp_path / "input.wav", 2.0)
    stages = []
    label = next(k for k, v in TASKS.items() if v == ("enhance", "av"))
    res = run_job(Engine(), label, wav, Analysis(video=False, seconds=2.0), tmp_path / "run",
                  on_stage=lambda s, f: stages.append((s, f)))
    assert res.mode == "audio-only" and "no video" in res.reason and res.model == "audio"
    out, sr = load_audio(res.outputs[0].wav, None)
    assert sr == 16000 and out.shape[0] == 32000 and res.outputs[0].mp4 is None
    assert res.figures["spectrograms"].stat().st_size > 1000 and "mouth" not in res.figures
    assert {"reading", "front end", "loading the model", "model", "writing", "figures"} <= set(res.stages)
    fracs = [f for _, f in stages]
    assert fracs == sorted(fracs) and fracs[-1] == 1.0 and any(s.startswith(f"model: part 1 of {DEFAULT_SHIFTS}") for s, _ in stages)
    assert res.dnsmos is None


def test_video_without_a_face_runs_audio_only_and_says_why(tmp_path):
    from avse.audio.io import load_audio
    from avse.video.io import write_video
    from avse.web.jobs import TASKS, Engine, analyse, run_job

    audio = load_audio(_wav(tmp_path / "a.wav", 1.0), 16000)[0]
    clip = tmp_path / "grey.mp4"
    write_video(clip, np.full((25, 96, 96, 3), 128, np.uint8), audio=audio)
    analysis = analyse(clip, True, 1.0, tmp_path)
    assert analysis.faces == [] and analysis.frontend is None and "no face" in analysis.reason
    label = next(k for k, v in TASKS.items() if v == ("enhance", "av"))
    res = run_job(Engine(), label, clip, analysis, tmp_path / "run")
    assert res.mode == "audio-only" and res.model == "audio" and "no face in the video" in res.reason
    assert res.outputs[0].mp4 is not None and res.outputs[0].mp4.stat().st_size > 0 and "mouth" not in res.figures


def test_blind_separation_job_writes_each_output_at_its_level(tmp_path):
    from avse.audio.io import load_audio
    from avse.web.jobs import TASKS, Analysis, Engine, run_job

    wav = _wav(tmp_path / "input.wav", 1.0)
    label = next(k for k, v in TASKS.items() if v[0] == "separate")
    res = run_job(Engine(), label, wav, Analysis(video=False, seconds=1.0), tmp_path / "run")
    assert res.mode == "blind" and [o.name for o in res.outputs] == ["source0", "source1"]
    for o in res.outputs:
        assert load_audio(o.wav, None)[0].shape[0] == 16000 and o.mp4 is None
    from avse.web.app import facts_markdown

    x = load_audio(wav, 16000)[0]
    for o, db in zip(res.outputs, res.facts["levels_db"]):  # each output's level against the input's, as written
        y = load_audio(o.wav, None)[0]
        if not np.any(y):  # one voice heard (a tone is no two talkers): the other output is silent, its level floored
            assert db == -120.0 and res.facts.get("one_voice")
            continue
        assert db == pytest.approx(10 * np.log10(np.mean(y.astype(np.float64) ** 2) / np.mean(x.astype(np.float64) ** 2)), abs=0.2)
    assert "**Levels against the input:** source0 " in facts_markdown(res, Analysis(video=False, seconds=1.0))


@pytest.mark.skipif(not HAS_DNSMOS, reason="DNSMOS models not in ../shared/models/dnsmos")
def test_job_scores_input_and_output_with_dnsmos_when_configured(tmp_path):
    from avse.web.app import facts_markdown
    from avse.web.jobs import TASKS, Analysis, Engine, run_job

    pytest.importorskip("gradio")
    wav = _wav(tmp_path / "input.wav", 2.0)
    label = next(k for k, v in TASKS.items() if v == ("enhance", "audio"))
    analysis = Analysis(video=False, seconds=2.0)
    res = run_job(Engine(dnsmos=str(DNSMOS)), label, wav, analysis, tmp_path / "run")
    assert set(res.dnsmos) == {"input", "enhanced"} and "DNSMOS" in res.stages
    for scores in res.dnsmos.values():
        assert set(scores) == {"SIG", "BAK", "OVRL", "P808"} and all(1.0 <= v <= 5.0 for v in scores.values())
    text = facts_markdown(res, analysis)
    assert "| DNSMOS | SIG | BAK | OVRL | P808 |" in text and "| enhanced |" in text


def test_browser_live_engine_reports_latency_and_keeps_the_stream_length():
    from avse.web.live import BrowserLive

    live = BrowserLive("av-causal", block=640, backend="torch")
    sr, chunk = 48000, 12000  # 250 ms chunks from the browser, int16 stereo
    rng = np.random.default_rng(1)
    total = 0
    for _ in range(8):
        data = (rng.standard_normal((chunk, 2)) * 3000).astype(np.int16)
        total += live.push(sr, data).shape[0]
    n16 = 8 * chunk // 3
    assert n16 - 2 * 640 <= total <= n16  # what is ready: whole blocks, less the resampler's and the block's hold-back
    lat = live.latency()
    assert lat["model_ms"] == pytest.approx(live.engine.latency_ms) and lat["browser_chunk_ms"] == pytest.approx(250.0)
    assert lat["total_ms"] == pytest.approx(lat["model_ms"] + lat["resample_ms"] + 250.0) and lat["resample_ms"] > 0
    assert "latency" in live.status() and "audio-only" in live.status()
    with pytest.raises(ConfigError):
        live.push(44100, np.zeros(100, np.int16))


# ---------------------------------------------------------------------------------------------
# the real server in a real browser (Debian's chromium through Playwright)
# ---------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _browser_or_skip():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install 'avse[ui]')")
    if not Path(CHROMIUM).is_file():
        pytest.skip("Debian's chromium is not installed (scripts/setup installs it as root: apt-get install chromium)")
    return sync_playwright


@pytest.fixture(scope="module")
def talk_clip(tiny_corpus, tmp_path_factory) -> Path:
    """A short synthetic talking face with noisy sound: a rendered dev scene's face video and its mixture."""
    from avse.audio.io import load_audio
    from avse.video.io import read_video, write_video

    scene = sorted((tiny_corpus / "dev" / "scenes").glob("*_silent.mp4"))[0]
    mixed, _ = load_audio(scene.with_name(scene.name.replace("_silent.mp4", "_mixed.wav")), 16000)
    path = tmp_path_factory.mktemp("ui") / "talk.mp4"
    write_video(path, read_video(scene, with_audio=False).frames, audio=mixed)
    return path


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory):
    """`avse ui` on a free localhost port, its temporary folders under a private TMPDIR -> (url, tmpdir, process)."""
    _browser_or_skip()
    tmp = tmp_path_factory.mktemp("ui_tmp")
    port = _free_port()
    env = dict(os.environ, TMPDIR=str(tmp), OMP_NUM_THREADS="1", GRADIO_ANALYTICS_ENABLED="False")
    extra = ["--dnsmos", str(DNSMOS)] if HAS_DNSMOS else []
    proc = subprocess.Popen([sys.executable, "-m", "avse.cli", "ui", "--port", str(port), "--max-seconds", "20", "--max-upload-mb", "1",
                             *extra],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"avse ui did not start: {err[-2000:]}")
        time.sleep(0.5)
    yield url, tmp, proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)


@pytest.fixture(scope="module")
def browser(ui_server):
    sync_playwright = _browser_or_skip()
    with sync_playwright() as p:
        # a fake microphone (a beep) for the live tab, granted without asking
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--autoplay-policy=no-user-gesture-required",
            "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"])
        yield b
        b.close()


def _status_has(page, text: str, timeout_s: float) -> None:
    page.wait_for_function("t => (document.querySelector('#status') || {innerText: ''}).innerText.includes(t)", arg=text,
                           timeout=timeout_s * 1000)


#: in the page: load the audio file the output player offers, play it to the end (muted) -> [duration, played to the end]
_PLAY = """async (sel) => {
  const link = document.querySelector(sel + ' a[href]');
  if (!link) return null;
  const a = new Audio(link.href);
  a.muted = true;
  await new Promise((ok, no) => { a.onloadedmetadata = ok; a.onerror = () => no(new Error('cannot load ' + link.href)); });
  const ended = new Promise(ok => { a.onended = () => ok(true); setTimeout(() => ok(false), 30000); });
  await a.play();
  return [a.duration, await ended, link.href];
}"""


@pytest.mark.slow
def test_browser_enhances_an_uploaded_talking_face(ui_server, browser, talk_clip, tmp_path):
    from avse.audio.io import load_audio

    url, _, _ = ui_server
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url)
    page.locator("#upload input[type=file]").set_input_files(str(talk_clip))
    _status_has(page, "face track(s) found", 120)
    page.screenshot(path=str(tmp_path / "faces.png"), full_page=True)
    assert page.locator("#faces img").count() >= 1
    assert page.eval_on_selector("#faces img", "img => img.complete && img.naturalWidth > 0")
    assert "the talker avse picked" in page.inner_text("#face-list")
    page.click("#run")
    _status_has(page, "Done (run 1):", 180)
    page.screenshot(path=str(tmp_path / "result.png"), full_page=True)
    facts = page.inner_text("#facts")
    assert "Mode: audio-visual" in facts and "A/V offset" in facts and "Stages:" in facts
    assert re.search(r"Talker's voice: from (the blind model separate|the audio-visual model): \S", facts), facts
    if HAS_DNSMOS:  # scores of the input and the output, in a table
        assert "DNSMOS\tSIG\tBAK\tOVRL\tP808" in facts and "\nenhanced\t" in facts, facts
    else:
        assert "DNSMOS: not configured" in facts
    duration, ended, href = page.evaluate(_PLAY, "#out-audio-0")
    expected = load_audio(talk_clip, 16000)[0].shape[0] / 16000
    assert duration == pytest.approx(expected, abs=0.03) and ended, (duration, expected, ended)
    assert href.endswith("enhanced.wav")
    for sel in ("#spectrograms img", "#mouth img"):
        assert page.eval_on_selector(sel, "img => img.complete && img.naturalWidth > 200"), sel
    assert page.locator("#out-video-0 video").count() == 1
    links = page.eval_on_selector_all("#downloads a[href]", "links => links.map(a => a.href.split('/').pop())")
    assert {"enhanced.wav", "enhanced.mp4"} <= set(links), links
    page.close()


@pytest.mark.slow
def test_browser_bad_upload_gives_a_message(ui_server, browser, tmp_path):
    url, _, proc = ui_server
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video at all\n" * 100)
    page = browser.new_page()
    page.goto(url)
    page.locator("#upload input[type=file]").set_input_files(str(bad))
    _status_has(page, "Could not use bad.mp4", 60)
    text = page.inner_text("#status")
    page.screenshot(path=str(tmp_path / "bad.png"), full_page=True)
    assert "Traceback" not in page.content() and "/sessions/" not in text
    assert proc.poll() is None  # the server is still up
    page.click("#run")  # and running with nothing usable says so, too
    _status_has(page, "upload a video or an audio file first", 60)
    big = tmp_path / "big.mp4"  # over the server's --max-upload-mb 1: refused before it is stored
    big.write_bytes(np.random.default_rng(0).integers(0, 256, 1_500_000, dtype=np.uint8).tobytes())
    page.locator("#upload input[type=file]").set_input_files(str(big))
    page.wait_for_function("() => document.body.innerText.includes('exceed the maximum allowed size of 1.0 Mb')", timeout=30000)
    page.close()


@pytest.fixture(scope="module")
def two_faces(tiny_corpus, tmp_path_factory) -> Path:
    """Two synthetic talkers side by side, with the left one's voice."""
    from avse.audio.io import load_audio
    from avse.video.io import read_video, write_video

    clips = sorted((tiny_corpus / "dev" / "targets_video").glob("*.mp4"))[:2]
    a, b = (read_video(c, with_audio=False).frames for c in clips)
    n = min(len(a), len(b))
    path = tmp_path_factory.mktemp("ui") / "two.mp4"
    write_video(path, np.concatenate([a[:n], b[:n]], axis=2), audio=load_audio(clips[0], 16000)[0][: n * 640])
    return path


@pytest.mark.slow
def test_browser_picks_another_face(ui_server, browser, two_faces, tmp_path):
    url, _, _ = ui_server
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(url)
        page.locator("#upload input[type=file]").set_input_files(str(two_faces))
        _status_has(page, "2 face track(s) found", 120)
        listing = page.inner_text("#face-list")
        assert "track 0" in listing and "track 1" in listing and "the talker avse picked" in listing
        picked = "0" if "track 0: visible" in listing.split("the talker avse picked")[0].splitlines()[-1] else "1"
        other = "1" if picked == "0" else "0"
        thumbs = page.locator("#faces img")
        assert thumbs.count() == 2
        thumbs.nth(int(other)).click()  # thumbnails are left to right, like the tracks here
        page.wait_for_function("v => [...document.querySelectorAll('#face-pick input')].some(i => i.checked && i.value === v)",
                               arg=other, timeout=20000)
        page.click("#run")
        _status_has(page, "Done (run 1):", 180)
        page.screenshot(path=str(tmp_path / "picked.png"), full_page=True)
        assert f"the lips of track {other} (the face you picked)" in page.inner_text("#facts")
    finally:
        page.close()


@pytest.mark.slow
def test_browser_live_tab_runs_the_microphone_through_the_causal_model(ui_server, browser, tmp_path):
    url, _, _ = ui_server
    context = browser.new_context(permissions=["microphone"])
    try:
        page = context.new_page()
        page.goto(url)
        page.get_by_role("tab", name="Live").click()
        assert "not used here" in page.inner_text("body")  # it says that the camera's lips are not used
        page.locator("#live-mic button", has_text="Record").first.click()
        page.wait_for_function("document.querySelector('#live-status').innerText.includes('s heard')", timeout=90000)
        page.wait_for_function("parseFloat(document.querySelector('#live-status').innerText) >= 1.0", timeout=60000)
        line = page.inner_text("#live-status")
        page.screenshot(path=str(tmp_path / "live.png"), full_page=True)
        assert "model 41 ms" in line and "audio-only" in line, line
    finally:
        context.close()


@pytest.mark.slow
def test_server_removes_its_work_folder(ui_server, browser, talk_clip):
    url, tmp, proc = ui_server
    work = [p for p in tmp.iterdir() if p.name.startswith("avse-ui-")]
    assert len(work) == 1, list(tmp.iterdir())
    sessions = work[0] / "sessions"
    before = set(sessions.iterdir())
    page = browser.new_page()
    page.goto(url)
    page.locator("#upload input[type=file]").set_input_files(str(talk_clip))
    _status_has(page, "face track(s) found", 120)
    mine = set(sessions.iterdir()) - before
    assert len(mine) == 1 and (next(iter(mine)) / "input.mp4").is_file()
    page.close()  # the tab goes: its session folder goes (when the server sees the connection drop)
    deadline = time.monotonic() + 40
    while next(iter(mine)).exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not next(iter(mine)).exists()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert not work[0].exists()


def test_enhance_job_takes_the_attenuation_limit(tmp_path):
    """The page's limit reaches the enhancer: 0 gives the model's output, the default mixes the input back in 20 dB
    down; the facts say which."""
    from avse.audio.io import load_audio
    from avse.web.app import facts_markdown
    from avse.web.jobs import TASKS, Analysis, Engine, run_job

    wav = _wav(tmp_path / "input.wav", 1.0)
    label = next(k for k, v in TASKS.items() if v == ("enhance", "audio"))
    engine, analysis = Engine(), Analysis(video=False, seconds=1.0)
    raw = run_job(engine, label, wav, analysis, tmp_path / "raw", atten_lim_db=0)
    limited = run_job(engine, label, wav, analysis, tmp_path / "limited")
    x = load_audio(wav, 16000)[0]
    y0, y1 = (load_audio(r.outputs[0].wav, None)[0] for r in (raw, limited))
    np.testing.assert_allclose(y1, y0 + 0.1 * (x - y0), atol=2e-4)  # 16-bit wav files
    assert raw.facts["atten_lim_db"] is None and limited.facts["atten_lim_db"] == 20.0
    assert "none" in facts_markdown(raw, analysis) and "20 dB" in facts_markdown(limited, analysis)


def test_enhance_job_takes_the_post_filter(tmp_path):
    """The page's post-filter strength reaches the enhancer (the output is the post-filtered estimate with the input
    mixed back in), 0 or empty turns it off, and the facts say which."""
    from avse.audio.io import load_audio
    from avse.inference import postfilter
    from avse.web.app import facts_markdown
    from avse.web.jobs import TASKS, Analysis, Engine, run_job

    wav = _wav(tmp_path / "input.wav", 1.0)
    label = next(k for k, v in TASKS.items() if v == ("enhance", "audio"))
    engine, analysis = Engine(), Analysis(video=False, seconds=1.0)
    raw = run_job(engine, label, wav, analysis, tmp_path / "raw", atten_lim_db=0)
    off = run_job(engine, label, wav, analysis, tmp_path / "off", atten_lim_db=0, postfilter=0)
    on = run_job(engine, label, wav, analysis, tmp_path / "on", atten_lim_db=0, postfilter=2.0)
    x = load_audio(wav, 16000)[0]
    y_raw, y_off, y_on = (load_audio(r.outputs[0].wav, None)[0] for r in (raw, off, on))
    np.testing.assert_allclose(y_off, y_raw, atol=1e-6)
    np.testing.assert_allclose(y_on, postfilter(y_raw, x, 2.0), atol=2e-3)  # 16-bit wav files in between
    assert off.facts["postfilter"] is None and on.facts["postfilter"] == 2.0
    assert "Post-filter:** off" in facts_markdown(off, analysis) and "strength 2" in facts_markdown(on, analysis)


def test_facts_say_which_output_each_face_got_by_lip_sync(tmp_path):
    from avse.web.app import facts_markdown
    from avse.web.jobs import Analysis, JobResult, Output

    outs = [Output(f"face{i}", tmp_path / f"face{i}.wav", None, 1.0) for i in range(2)]
    res = JobResult(task="separate", model="separate", mode="blind, by lip sync", reason=None, input_wav=tmp_path / "in.wav",
                    outputs=outs, figures={}, stages={}, facts={"assignment": {"sources": [1, 0], "lse_c": [[0.02, 0.05], [0.06, 0.01]]}})
    text = facts_markdown(res, Analysis(video=True, seconds=1.0))
    assert "given to the faces by lip sync: face0 <- output 1 (LSE-C 0.050), face1 <- output 0 (LSE-C 0.060)" in text
    assert "Turns" not in text and "One voice" not in text
    res.facts["assignment"]["one_voice"] = "face1"
    assert "**One voice:** face1 talks and gets the whole input" in facts_markdown(res, Analysis(video=True, seconds=1.0))
    del res.facts["assignment"]["one_voice"]
    blind = JobResult(task="separate", model="separate", mode="blind", reason="no face", input_wav=tmp_path / "in.wav",
                      outputs=outs, figures={}, stages={}, facts={"one_voice": "source0"})
    assert "**One voice:** the blind model split off a trace of it; source0 gets the whole input" in facts_markdown(
        blind, Analysis(video=False, seconds=1.0))
    blind.facts["overlap_share"] = 0.0
    assert "**One voice:** the blind model split it (two voices at once on 0% of the active frames)" in facts_markdown(
        blind, Analysis(video=False, seconds=1.0))
    blind.facts["speaker_similarity"], blind.facts["same_speaker"] = 0.88, True
    assert "on 0% of the active frames, the same voice in both outputs (similarity 0.88))" in facts_markdown(
        blind, Analysis(video=False, seconds=1.0))
    del blind.facts["speaker_similarity"], blind.facts["same_speaker"]
    blind.facts["voices_apart"], blind.facts["one_voice_throughout"] = 0.97, True
    assert "on 0% of the active frames, one voice throughout the input (its pieces alike: 0.97))" in facts_markdown(
        blind, Analysis(video=False, seconds=1.0))
    del blind.facts["overlap_share"], blind.facts["voices_apart"], blind.facts["one_voice_throughout"]
    res.facts["assignment"]["turns"] = [{"start_s": 0.0, "sources": [1, 0]}, {"start_s": 3.2, "sources": [0, 1]}]
    text = facts_markdown(res, Analysis(video=True, seconds=1.0))
    assert "turn by turn" in text and "face0 <- output 1 (LSE-C" not in text
    assert "the pairing changes 1 time(s): from 0.0 s face0 <- output 1, face1 <- output 0; from 3.2 s face0 <- output 0" in text


def test_facts_say_whose_output_the_talkers_voice_is(tmp_path):
    from avse.web.app import facts_markdown
    from avse.web.jobs import Analysis, JobResult, Output

    out = [Output("enhanced", tmp_path / "enhanced.wav", None, 1.0)]
    talker = {"used": "blind", "model": "separate", "why": "a second voice (80% voiced, -4.0 dB): the lips follow output 1"}
    res = JobResult(task="enhance", model="av", mode="audio-visual", reason=None, input_wav=tmp_path / "in.wav",
                    outputs=out, figures={}, stages={}, facts={"face": {"choice": "only"}, "talker": talker})
    assert "**Talker's voice:** from the blind model `separate`: a second voice" in facts_markdown(res, Analysis(video=True, seconds=1.0))
    res.facts["talker"] = {"used": "av", "why": "one voice (the blind model's quieter output -14.0 dB under the input)"}
    assert "**Talker's voice:** from the audio-visual model: one voice" in facts_markdown(res, Analysis(video=True, seconds=1.0))
    del res.facts["talker"]
    assert "Talker's voice" not in facts_markdown(res, Analysis(video=True, seconds=1.0))
