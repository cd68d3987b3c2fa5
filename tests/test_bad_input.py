"""Hostile or broken input: names in metadata that would leave the corpus, system errors, empty checkpoints,
still images, bad samples, bad training recipes; and interruptions (Ctrl-C, SIGKILL, two runs at once).

Each bad input must end in one line on stderr naming the file and exit code 2 (the code for every
AvseError), never a traceback, and never a file written outside the corpus. A Ctrl-C ends in exit code 130
and one line; a re-run resumes, redoing what was not recorded as complete.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from avse.cli import main
from avse.data import metadata as md
from avse.errors import ConfigError, MetadataError

BAD_NAMES = ["../x", "../../../escaped", "/abs", "a/b", "a\\b", "", "nul\x00name", ".", "..", "x" * 300]

SPEECH = {"wavfile": "t001", "dataset": "dev", "nsamples": 16000, "speaker": "spk1"}
NOISE = {"ID": "n001", "class": "hum", "type": "noise", "dataset": "dev", "nsamples": 48000}
SCENE = {
    "scene": "S00001",
    "dataset": "dev",
    "target": {"name": "t001", "speaker": "spk1"},
    "duration": 16000,
    "interferer": {"type": "noise", "name": "n001", "offset": 0},
    "SNR": 0.0,
    "pre_samples": 0,
    "post_samples": 0,
}


def _with(entry: dict, field: str, value: str) -> dict:
    """A copy of ``entry`` with ``field`` (``a.b`` for a nested field) set to ``value``."""
    entry = json.loads(json.dumps(entry))
    *outer, last = field.split(".")
    inner = entry
    for key in outer:
        inner = inner[key]
    inner[last] = value
    return entry


def _refused(loader, path: Path, field: str) -> str:
    with pytest.raises(MetadataError) as info:
        loader(path)
    msg = str(info.value)
    assert "\n" not in msg
    assert str(path) in msg and field in msg
    return msg


CASES = [
    (md.load_speech_list, SPEECH, "wavfile"),
    (md.load_speech_list, SPEECH, "dataset"),
    (md.load_speech_list, SPEECH, "speaker"),
    (md.load_noise_list, NOISE, "ID"),
    (md.load_noise_list, NOISE, "dataset"),
    (md.load_scenes, SCENE, "scene"),
    (md.load_scenes, SCENE, "dataset"),
    (md.load_scenes, SCENE, "target.name"),
    (md.load_scenes, SCENE, "target.speaker"),
    (md.load_scenes, SCENE, "interferer.name"),
]


@pytest.mark.parametrize(("loader", "entry", "field"), CASES, ids=[f"{c[0].__name__}-{c[2]}" for c in CASES])
@pytest.mark.parametrize("bad", BAD_NAMES, ids=repr)
def test_names_that_are_not_plain_file_names_refuse_the_whole_file(tmp_path, loader, entry, field, bad):
    path = tmp_path / "list.json"
    path.write_text(json.dumps([entry, _with(entry, field, bad)]))
    _refused(loader, path, field)


def test_extra_interferers_are_checked_too(tmp_path):
    scene = dict(SCENE, interferers=[{"type": "speech", "name": "../../../../inputs/good", "offset": 0}])
    path = tmp_path / "scenes.dev.json"
    path.write_text(json.dumps([scene]))
    assert "interferers[0].name" in _refused(md.load_scenes, path, "../../../../inputs/good")


def test_plain_names_still_load(tmp_path):
    path = tmp_path / "scenes.dev.json"
    path.write_text(json.dumps([_with(SCENE, "scene", "S 0001-a_b.c"), _with(SCENE, "scene", "S\u00e9")]))
    assert [s["scene"] for s in md.load_scenes(path)] == ["S 0001-a_b.c", "S\u00e9"]
    speech = tmp_path / "speech.json"
    speech.write_text(json.dumps([_with(SPEECH, "speaker", 7)]))  # an integer speaker is a name too
    assert md.load_speech_list(speech)[0]["speaker"] == 7


def test_safe_name_and_check_file_stem_share_one_rule(tmp_path):
    from avse.utils.fs import check_file_stem

    assert md.safe_name("S00001", tmp_path / "x.json", "entry 0") == "S00001"
    for bad in BAD_NAMES:
        with pytest.raises(MetadataError, match="plain file name"):
            md.safe_name(bad, tmp_path / "x.json", "entry 0")
        with pytest.raises(ConfigError, match="cannot be a file name"):
            check_file_stem(bad)


@pytest.mark.parametrize(("field", "value"), [("id", "../x"), ("speaker", "a/b"), ("speaker", ""), ("wavfile", "../../secret.wav")])
def test_real_speech_list_names_are_checked(tmp_path, field, value):
    from avse.data.realspeech import FORMAT, LIST_NAME, load_real_speech

    item = {"id": "u1", "wavfile": "wav/u1.wav", "speaker": "spk", "language": "en", "transcript": None,
            "duration": 1.0, "nsamples": 16000, "phones": None}
    path = tmp_path / LIST_NAME
    path.write_text(json.dumps({"format": FORMAT, "items": [item]}))
    assert load_real_speech(tmp_path) == [item]
    path.write_text(json.dumps({"format": FORMAT, "items": [item, dict(item, **{field: value})]}))
    with pytest.raises(MetadataError, match=f"item 1: field '{field}'") as info:
        load_real_speech(tmp_path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def _files(root: Path) -> set[Path]:
    return set(root.rglob("*"))


@pytest.mark.parametrize(
    ("field", "value"),
    [("scene", "../../../escaped"), ("scene", "/tmp/avse-escaped"), ("target.name", "../../../../inputs/good"),
     ("interferer.name", "../../x")],
)
def test_scenes_render_refuses_escaping_names_and_writes_nothing(corpus_copy, tmp_path, capsys, field, value):
    spath = md.scenes_path(corpus_copy, "dev")
    scenes = json.loads(spath.read_text())
    scenes[1] = _with(scenes[1], field, value)
    spath.write_text(json.dumps(scenes))
    shutil.rmtree(md.scenes_dir(corpus_copy, "dev"))
    before = _files(tmp_path)

    assert main(["scenes", "render", str(corpus_copy), "--dataset", "dev", "--jobs", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("avse: error: ") and str(spath) in err and field in err
    assert _files(tmp_path) == before  # no scene rendered, inside the corpus or out of it
    assert not Path("/tmp/avse-escaped_mixed.wav").exists()


@pytest.mark.parametrize(
    "err",
    [
        PermissionError(errno.EACCES, "Permission denied", "/data/out/S00001_mixed.wav"),
        OSError(errno.ENOSPC, "No space left on device", "/data/out/S00001_mixed.wav"),
        NotADirectoryError(errno.ENOTDIR, "Not a directory", "/data/file/sub"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_system_errors_are_one_line_and_exit_2(monkeypatch, capsys, err):
    def fail(*args, **kwargs):
        raise err

    monkeypatch.setattr("avse.data.render.render_scenes", fail)
    assert main(["scenes", "render", "/nowhere", "--dataset", "dev", "--quiet"]) == 2
    assert capsys.readouterr().err == f"avse: error: {err.filename}: {err.strerror}\n"


def test_a_bug_is_still_a_traceback(monkeypatch):
    def fail(*args, **kwargs):
        raise ValueError("a bug")

    monkeypatch.setattr("avse.data.render.render_scenes", fail)
    with pytest.raises(ValueError, match="a bug"):
        main(["scenes", "render", "/nowhere", "--dataset", "dev", "--quiet"])


def test_full_disk_while_writing_a_wav_names_the_file(monkeypatch, tmp_path, capsys):
    import soundfile as sf

    from avse.audio.io import save_wav

    def full(*args, **kwargs):
        raise sf.LibsndfileError(2)  # SFE_SYSTEM: what libsndfile says on ENOSPC

    monkeypatch.setattr(sf, "write", full)
    out = tmp_path / "out.wav"
    with pytest.raises(OSError, match="System error") as info:
        save_wav(out, np.zeros(160, dtype=np.float32))
    assert info.value.filename == str(out)
    assert list(tmp_path.iterdir()) == []  # the temporary file is gone too

    def render(*args, **kwargs):
        save_wav(out, np.zeros(160, dtype=np.float32))

    monkeypatch.setattr("avse.data.render.render_scenes", render)
    assert main(["scenes", "render", "/nowhere", "--dataset", "dev", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"avse: error: {out}: ") and "System error" in err


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc, where no folder can be made")
def test_output_folder_that_cannot_be_made_is_one_line(corpus_copy, capsys):
    # root may write anywhere else; /proc refuses a new folder even to root (a real OSError, not a mock)
    assert main(["prepare", str(corpus_copy), "/proc/avse-no-such-folder/cache", "--jobs", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("avse: error: /proc/avse-no-such-folder")


def _as_nobody() -> list[str] | None:
    """The command prefix that runs as user nobody, when setpriv exists and nobody can run this Python."""
    setpriv = shutil.which("setpriv")
    if setpriv is None or os.geteuid() != 0:
        return None
    prefix = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
    probe = subprocess.run([*prefix, sys.executable, "-c", "import avse"], capture_output=True, check=False)
    return prefix if probe.returncode == 0 else None


def test_read_only_output_folder_as_another_user(corpus_copy):
    prefix = _as_nobody()
    if prefix is None:
        pytest.skip("needs root, setpriv, and a Python that user nobody may run (this venv's may live under /root)")
    base = Path(tempfile.mkdtemp())
    try:
        base.chmod(0o755)
        root = base / "corpus"
        shutil.copytree(corpus_copy, root)
        shutil.rmtree(md.scenes_dir(root, "dev"))
        subprocess.run(["chmod", "-R", "a+rX,a-w", str(base)], check=True)
        cmd = [*prefix, sys.executable, "-m", "avse.cli", "scenes", "render", str(root), "--dataset", "dev", "--quiet"]
        res = subprocess.run(cmd, capture_output=True, text=True, check=False, env={**os.environ, "HOME": str(base)})
        assert res.returncode == 2
        assert res.stderr.count("\n") == 1 and res.stderr.startswith("avse: error: ") and "ermission denied" in res.stderr
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(base)], check=True)
        shutil.rmtree(base)


def test_info_on_an_empty_file_is_one_line(tmp_path, capsys):
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    assert main(["info", str(empty)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"avse: error: {empty}: ")


def test_checkpoint_error_with_an_empty_message_is_one_line(tmp_path, monkeypatch):
    import torch

    from avse.errors import MediaError
    from avse.models.checkpoint import read_checkpoint

    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")

    def silent(*args, **kwargs):
        raise EOFError()

    monkeypatch.setattr(torch, "load", silent)
    with pytest.raises(MediaError, match=r"not a readable checkpoint \(EOFError\)"):
        read_checkpoint(bad)


# --------------------------------------------------------------------------- messages that name the file

REAL_GRID = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "grid"


def _one_line(err: str, *parts: str) -> None:
    assert err.count("\n") == 1 and err.startswith("avse: error: "), err
    for part in parts:
        assert part in err, (part, err)


def _clip(path: Path, frames: int = 1) -> Path:
    from avse.video.io import write_video

    audio = np.random.default_rng(0).normal(0, 0.1, 640 * frames).astype(np.float32)
    write_video(path, np.full((frames, 64, 64, 3), 128, np.uint8), audio=audio)
    return path


def test_sync_on_a_one_frame_video_names_the_file(tiny_corpus, tmp_path, monkeypatch, capsys):
    from avse.video.landmarks import read_landmarks

    entry = next(e for e in md.load_speech_list(md.target_speech_list_path(tiny_corpus)) if e["dataset"] == "dev")
    lips = read_landmarks(md.target_landmarks_path(tiny_corpus, "dev", entry["wavfile"]))["lips"][:1]  # [1, 40, 2]
    monkeypatch.setattr("avse.video.track.extract_landmarks", lambda *a, **k: ({"lips": lips}, {}))
    clip = _clip(tmp_path / "one.mp4")
    assert main(["sync", str(clip)]) == 2
    _one_line(capsys.readouterr().err, f"{clip}: ", "0.5 s")


@pytest.mark.parametrize("command", ["frontend", "enhance"])
def test_face_index_out_of_range_names_the_file(tmp_path, monkeypatch, capsys, command):
    from types import SimpleNamespace

    from avse.video.track import choose_track

    def extract(video, audio=None, choose=None, **kwargs):
        one_face = SimpleNamespace(id=0, n_frames=5, mean_x=32.0)  # the fields choose_track reads of a Track
        choose_track([one_face], choose=choose)
        raise AssertionError("not reached")

    monkeypatch.setattr("avse.video.track.extract_landmarks", extract)
    clip = _clip(tmp_path / "clip.mp4", frames=5)
    out = ["--out", str(tmp_path / "fe")] if command == "frontend" else ["-o", str(tmp_path / "fe" / "out.wav"), "--quiet"]
    assert main([command, str(clip), "--face", "7", *out]) == 2
    _one_line(capsys.readouterr().err, f"{clip}: ", "face index 7")
    assert not (tmp_path / "fe").exists()


@pytest.mark.slow
def test_face_index_out_of_range_on_a_real_clip_names_the_file(tmp_path, capsys):
    from avse.video.detect import mediapipe_available

    clips = sorted(REAL_GRID.glob("*.mpg")) if REAL_GRID.is_dir() else []
    if not clips or not mediapipe_available():
        pytest.skip("needs a real GRID clip and MediaPipe")
    assert main(["frontend", str(clips[0]), "--face", "7", "--out", str(tmp_path / "fe")]) == 2
    _one_line(capsys.readouterr().err, f"{clips[0]}: ", "face index 7 is out of range")


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
@pytest.mark.parametrize("command", ["enhance", "separate", "sync", "frontend"])
def test_a_still_image_is_not_a_video(tmp_path, capsys, command, suffix):
    from PIL import Image

    picture = tmp_path / f"picture{suffix}"
    Image.fromarray(np.full((64, 64, 3), 100, np.uint8)).save(picture)
    args = {"enhance": ["-o", str(tmp_path / "out.wav")], "separate": ["-o", str(tmp_path / "sep")], "sync": [],
            "frontend": ["--out", str(tmp_path / "fe")]}[command]
    assert main([command, str(picture), *args]) == 2
    _one_line(capsys.readouterr().err, f"{picture}: a still image", "not a video")
    assert sorted(p.name for p in tmp_path.iterdir()) == [picture.name]


def test_about_file_names_the_file_once(tmp_path):
    from avse.errors import MediaError, about_file

    with pytest.raises(ConfigError, match=r"^/x/clip\.mp4: too short$"):
        with about_file("/x/clip.mp4"):
            raise ConfigError("too short")
    with pytest.raises(MediaError) as info:
        with about_file("/x/clip.mp4"):
            raise MediaError("/x/clip.mp4", "truncated")
    assert str(info.value) == "/x/clip.mp4: truncated" and info.value.path == Path("/x/clip.mp4")


# --------------------------------------------------------------------------- interruptions


def _espeak_engine():
    from avse.data.tts.errors import EngineMissingError
    from avse.data.tts.espeak import _Espeak

    try:
        return _Espeak()
    except EngineMissingError as err:
        pytest.skip(f"espeak-ng not usable: {err}")


class _Trip:
    """Interrupts the synthesis from inside a callback the third time it is touched: a raise, or a real SIGINT."""

    def __init__(self, how: str):
        self.how, self.n = how, 0

    def __call__(self) -> None:
        self.n += 1
        if self.n == 3:
            if self.how == "raise":
                raise KeyboardInterrupt
            import signal

            os.kill(os.getpid(), signal.SIGINT)  # Python's handler runs at the next bytecode, in the callback


class _TripCount(int):
    """The sample counter of _Espeak._on_sample, tripping on its increments."""

    trip: _Trip

    def __add__(self, other):
        self.trip()
        out = _TripCount(int(self) + other)
        out.trip = self.trip
        return out


class _TripList(list):
    """The chunk / phoneme-start lists of _on_audio and _on_phoneme_start, tripping on append."""

    def __init__(self, trip: _Trip):
        super().__init__()
        self.trip = trip

    def append(self, item):
        self.trip()
        super().append(item)


@pytest.mark.parametrize("how", ["raise", "signal"])
@pytest.mark.parametrize("where", ["_on_sample", "_on_audio", "_on_phoneme_start"])
def test_ctrl_c_inside_an_espeak_callback_always_stops_synthesis(monkeypatch, where, how):
    from avse.data.tts.espeak import _Espeak
    from avse.data.tts.voices import Voice

    trip = _Trip(how)
    original = _Espeak._reset

    def reset(self):
        original(self)
        if where == "_on_sample":
            self._count = _TripCount(0)
            self._count.trip = trip
        elif where == "_on_audio":
            self._chunks = _TripList(trip)
        else:
            self._starts = _TripList(trip)

    monkeypatch.setattr(_Espeak, "_reset", reset)
    engine = _espeak_engine()
    voice = Voice(engine="espeak", name="en-us")
    for _ in range(10):
        trip.n = 0
        with pytest.raises(KeyboardInterrupt):
            engine.synth("Bin blue at F two now, and then set green by A four please.", voice)
    monkeypatch.setattr(_Espeak, "_reset", original)
    assert engine.synth("Place red.", voice).samples.size > 0  # the engine still works afterwards


def test_interrupted_synth_exits_130_and_resumes_the_unrecorded_items(tmp_path, monkeypatch, capsys):
    import avse.data.synth as synth

    real = synth.make_speech
    made: list[str] = []

    def make(root, task, cfg):
        if len(made) == 3:
            raise KeyboardInterrupt
        entry = real(root, task, cfg)
        made.append(task.id)
        return entry

    monkeypatch.setattr(synth, "make_speech", make)
    root = tmp_path / "corpus"
    args = ["synth", str(root), "--preset", "tiny", "--jobs", "1", "--quiet"]
    assert main(args) == 130
    assert capsys.readouterr().err == "avse: interrupted (re-run the same command to resume)\n"
    assert sorted(p.stem for p in (root / synth.WORK_DIR).glob("*.json")) == sorted(made)
    monkeypatch.setattr(synth, "make_speech", real)
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    n_items = len(synth.plan_speech(_tiny())) + len(synth.plan_noise(_tiny()))
    assert summary["made_now"] == n_items - 3


def _tiny():
    """The SynthConfig of the tests' tiny corpus."""
    from avse.config import synth_config

    return synth_config("tiny")


def test_engine_temp_folders_live_under_the_corpus(tmp_path):
    from avse.data.tts.process import engine_tmp, scratch_dir

    with scratch_dir(tmp_path / "scratch"):
        with engine_tmp("festival") as tmp:
            assert Path(tmp).parent == tmp_path / "scratch" and Path(tmp).name.startswith("avse_festival_")
    with engine_tmp("flite") as tmp:
        assert Path(tmp).parent == Path(tempfile.gettempdir())


def test_engines_run_in_a_scratch_folder_given_relative_to_the_working_folder(tmp_path, monkeypatch):
    """festival runs in its temp folder: the scratch folder must not be taken relative to that."""
    import shutil

    from avse.data.tts.festival import synth_festival
    from avse.data.tts.process import scratch_dir
    from avse.data.tts.voices import Voice

    if shutil.which("festival") is None:
        pytest.skip("festival is not installed")
    monkeypatch.chdir(tmp_path)
    with scratch_dir(Path("corpus") / ".synth" / "tmp"):
        raw = synth_festival("hello there", Voice("festival", "kal_diphone"))
    assert len(raw.audio) > 1000


def test_a_killed_synth_leaves_no_engine_folders_and_a_truncated_wav_is_made_again(corpus_copy):
    from avse.data.synth import WORK_DIR, synthesize_corpus

    stale = corpus_copy / WORK_DIR / "tmp" / "avse_festival_k3j9"  # what SIGKILL during festival leaves
    stale.mkdir(parents=True)
    (stale / "out.wav").write_bytes(b"RIFF")
    wav = sorted((corpus_copy / "dev" / "targets").glob("*.wav"))[0]
    good = wav.read_bytes()
    wav.write_bytes(good[: len(good) // 2])  # truncated from outside, still a file
    summary = synthesize_corpus(corpus_copy, _tiny(), jobs=1, progress=False)
    assert summary["made_now"] == 1 and wav.read_bytes() == good
    assert not (corpus_copy / WORK_DIR / "tmp").exists()
    record = json.loads((corpus_copy / WORK_DIR / f"{wav.stem}.json").read_text())
    assert record["_files"][f"dev/targets/{wav.name}"] == len(good)
    listed = json.loads((corpus_copy / "metadata" / "target_speech_list.json").read_text())
    assert all("_files" not in e for e in listed)


def test_render_of_the_same_shard_waits_for_the_running_one(corpus_copy, capsys):
    import threading

    from avse.data.render import render_scenes
    from avse.utils.fs import exclusive_lock

    out = md.scenes_dir(corpus_copy, "dev")
    shutil.rmtree(out)
    out.mkdir()
    result: dict = {}
    with exclusive_lock(out / ".lock-0of1"):  # another render holds the shard
        thread = threading.Thread(target=lambda: result.update(render_scenes(corpus_copy, "dev", jobs=1, progress=True)))
        thread.start()
        thread.join(timeout=1.0)
        assert thread.is_alive() and not list(out.glob("*.wav"))
    thread.join(timeout=60)
    assert result["rendered"] == result["scenes"] == 4
    assert "waiting for another render" in capsys.readouterr().err
    assert render_scenes(corpus_copy, "dev", jobs=1, progress=False)["skipped"] == 4  # the second one's view
    assert not (out / ".lock-0of1").exists()


# --------------------------------------------------------------------------- training settings, checked first

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

TRAIN_CASES = {
    "batch_size=eight": (["data.batch_size=eight"], "data.batch_size: expected an integer, got 'eight'"),
    "max_steps=abc": (["max_steps=abc"], "max_steps: expected an integer, got 'abc'"),
    "batch_size=0": (["data.batch_size=0"], "data.batch_size must be >= 1"),
    "lr=nan": (["lr=nan"], "lr must be a finite number"),
    "lr=-1": (["lr=-1"], "lr must be a finite number >= 0"),
    "segment_frames=0": (["data.segment_frames=0"], "data.segment_frames must be >= 1"),
    "missing root": (["data.root=/nonexistent/corpus"], "data.root: no such folder /nonexistent/corpus"),
    "snr upside down": (["data.snr_speech=[5, -5]"], "data.snr_speech: SNR range upside down"),
    "p_speech=2": (["data.p_speech=2"], "data.p_speech must be in [0, 1]"),
    "snr of text": (["data.snr_noise=[a, b]"], "data.snr_noise: expected a list of numbers"),
    "max_epochs=0": (["max_epochs=0"], "max_epochs must be -1 (no limit) or >= 1"),
}


@pytest.mark.parametrize("case", list(TRAIN_CASES))
def test_train_refuses_a_bad_recipe_before_any_work(tiny_corpus, tmp_path, capsys, case):
    sets, message = TRAIN_CASES[case]
    out = tmp_path / "run"
    args = ["train", str(CONFIGS / "extract.yaml"), "--out", str(out), "--set", f"data.root={tiny_corpus}"]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 2
    _one_line(capsys.readouterr().err, message)
    assert not out.exists()  # no run/tb/version_0


def test_train_refuses_a_corpus_root_without_metadata(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    args = ["train", str(CONFIGS / "extract.yaml"), "--out", str(tmp_path / "run"), "--set", f"data.root={tmp_path / 'empty'}"]
    assert main(args) == 2
    _one_line(capsys.readouterr().err, str(md.target_speech_list_path(tmp_path / "empty")), "not a corpus")
    assert not (tmp_path / "run").exists()


def test_train_refuses_an_output_folder_that_is_a_file(tiny_corpus, tmp_path, capsys):
    out = tmp_path / "run"
    out.write_text("a file")
    args = ["train", str(CONFIGS / "extract.yaml"), "--out", str(out), "--set", f"data.root={tiny_corpus}"]
    assert main(args) == 2
    _one_line(capsys.readouterr().err, f"{out}: the run folder is a file")
    assert out.read_text() == "a file"


def _pickled(path: Path) -> None:
    import pickle

    path.write_bytes(pickle.dumps({"a": 1}, protocol=4))


@pytest.mark.parametrize(
    ("content", "message"),
    [(lambda p: p.write_text("hello"), "not a readable checkpoint"), (_pickled, "not a readable checkpoint"),
     (lambda p: __import__("torch").save({"state_dict": {}}, p), "not a checkpoint written by avse training"),
     (lambda p: p.write_bytes(b""), "not a readable checkpoint")],
    ids=["text", "pickle", "foreign-torch", "empty"],
)
def test_resume_from_a_checkpoint_that_is_not_ours_is_one_line(tiny_corpus, tmp_path, capsys, content, message):
    out = tmp_path / "run"
    out.mkdir()
    content(out / "last.ckpt")
    before = _files(out)
    args = ["train", str(CONFIGS / "extract.yaml"), "--out", str(out), "--set", f"data.root={tiny_corpus}", "--resume"]
    assert main(args) == 2
    _one_line(capsys.readouterr().err, f"{out / 'last.ckpt'}: ", message)
    assert _files(out) == before


@pytest.mark.parametrize("model", ["garbage", "missing.avse.pt"])
def test_demo_refuses_an_unknown_model_before_synthesizing(tmp_path, capsys, model):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--model", model]) == 2
    _one_line(capsys.readouterr().err, model)
    assert not out.exists()


# --------------------------------------------------------------------------- bad samples


def _float_wav(path: Path, bad: float) -> Path:
    import soundfile as sf

    x = np.random.default_rng(1).normal(0, 0.1, 16000).astype(np.float32)
    x[100] = bad
    sf.write(str(path), x, 16000, subtype="FLOAT")
    return path


@pytest.mark.parametrize("bad", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_nan_or_inf_in_a_corpus_wav_names_the_file(corpus_copy, capsys, bad):
    from avse.audio.wav16 import read_wav64
    from avse.errors import MediaError

    wav = sorted((corpus_copy / "dev" / "targets").glob("*.wav"))[0]
    _float_wav(wav, bad)
    with pytest.raises(MediaError, match="NaN or infinite"):
        read_wav64(wav)
    shutil.rmtree(md.scenes_dir(corpus_copy, "dev"))
    assert main(["scenes", "render", str(corpus_copy), "--dataset", "dev", "--jobs", "1", "--quiet"]) == 2
    _one_line(capsys.readouterr().err, str(wav), "NaN or infinite")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_nan_or_inf_in_an_input_names_the_file(tmp_path, capsys, bad):
    wav = _float_wav(tmp_path / "in.wav", bad)
    assert main(["enhance", str(wav), "-o", str(tmp_path / "out.wav"), "--model", "audio"]) == 2
    _one_line(capsys.readouterr().err, str(wav), "NaN or infinite")
    assert not (tmp_path / "out.wav").exists()


@pytest.mark.parametrize("level", [0.0, 1e-6], ids=["zeros", "below-16-bit"])
def test_synth_refuses_a_silent_noise_file(tmp_path, capsys, level):
    import soundfile as sf

    noise = tmp_path / "noise" / "hum.wav"
    noise.parent.mkdir()
    sf.write(str(noise), np.full(16000, level, np.float32), 16000, subtype="FLOAT")
    root = tmp_path / "corpus"
    assert main(["synth", str(root), "--preset", "tiny", "--noise-dir", str(noise.parent), "--quiet"]) == 2
    _one_line(capsys.readouterr().err, str(noise), "silent")
    assert not root.exists()


# --------------------------------------------------------------------------- training: Ctrl-C, SIGKILL, resume

SMALL_AVNET = dict(
    n_filters=16, kernel_size=16, bottleneck=8, hidden=16, skip=8, n_blocks=2, n_repeats=1, fusion_block=1, visual_hidden=8
)


def _train_config(root: Path, steps: int) -> dict:
    data = dict(root=str(root), segment_frames=10, batch_size=1, val_segment_frames=10, visual_augment=True)
    return dict(model="avnet", model_config=dict(SMALL_AVNET, visual_dropout=0.5), task="extract", data=data,
                max_steps=steps, log_every_n_steps=1)


@pytest.mark.slow
def test_a_resumed_run_reaches_the_weights_of_an_uninterrupted_one(tiny_corpus, tmp_path):
    import torch

    from avse.training.module import fit

    fit(_train_config(tiny_corpus, 6), tmp_path / "straight")  # 2 steps per epoch: 3 epochs
    fit(_train_config(tiny_corpus, 2), tmp_path / "resumed")
    fit(_train_config(tiny_corpus, 6), tmp_path / "resumed", resume=True)
    a = torch.load(tmp_path / "straight" / "last.ckpt", weights_only=True)
    b = torch.load(tmp_path / "resumed" / "last.ckpt", weights_only=True)
    assert a["global_step"] == b["global_step"] == 6
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key


@pytest.mark.slow
def test_stray_partial_files_of_a_killed_run_do_not_survive_the_resume(tiny_corpus, tmp_path):
    from avse.training.module import fit

    out = tmp_path / "run"
    fit(_train_config(tiny_corpus, 2), out)
    strays = [out / ".last.k3j_x9a2.part.ckpt", out / ".last.avse.q8w2e4r6.part.pt",
              out / ".epoch000-step0000002.a1b2c3d4.part.ckpt"]
    for p in strays:
        p.write_bytes(b"half a checkpoint")
    fit(_train_config(tiny_corpus, 4), out, resume=True)
    assert not [p for p in strays if p.exists()]
    assert not [p.name for p in out.iterdir() if ".part" in p.name]


def test_checkpoints_are_written_atomically(tmp_path, monkeypatch):
    import torch

    from avse.training.module import AtomicCheckpointIO

    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"global_step": 1}, path)
    assert torch.load(path, weights_only=True) == {"global_step": 1}

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", killed)
    with pytest.raises(KeyboardInterrupt):
        AtomicCheckpointIO().save_checkpoint({"global_step": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"global_step": 1}  # the previous checkpoint is whole
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


@pytest.mark.slow
def test_ctrl_c_during_training_exits_130_with_one_line(tiny_corpus, tmp_path):
    import signal
    import time

    out = tmp_path / "run"
    sets = [f"data.root={tiny_corpus}", "max_steps=100000", "data.batch_size=1", "data.segment_frames=10",
            "data.val_segment_frames=10", "model_config.n_blocks=2", "model_config.n_repeats=1", "model_config.fusion_block=1"]
    cmd = [sys.executable, "-m", "avse.cli", "train", str(CONFIGS / "extract.yaml"), "--out", str(out), "--quiet"]
    for s in sets:
        cmd += ["--set", s]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 120
        while not (out / "last.avse.pt").is_file() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert err.splitlines()[-1] == "avse: interrupted (re-run the same command to resume)"
    assert "Detected KeyboardInterrupt" not in err and "Traceback" not in err


_SLOW_RENDER = """
import json, sys, time
from avse.data import render as rd
real = rd.wav_bytes_int16
def slow(x, *a):
    time.sleep(0.02)
    return real(x, *a)
rd.wav_bytes_int16 = slow
print(json.dumps(rd.render_scenes(sys.argv[1], "dev", jobs=1, progress=False, with_video=False)))
"""


@pytest.mark.slow
def test_two_renders_of_one_corpus_render_each_scene_once(corpus_copy):
    from avse.data.scenes import build_scenes, write_scenes

    write_scenes(corpus_copy, "dev", build_scenes(corpus_copy, "dev", n_scenes=30, seed=5))
    shutil.rmtree(md.scenes_dir(corpus_copy, "dev"))
    procs = [subprocess.Popen([sys.executable, "-c", _SLOW_RENDER, str(corpus_copy)], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    summaries = [json.loads(p.communicate(timeout=300)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sorted(s["rendered"] for s in summaries) == [0, 30]  # the second waited, then found all done
    assert not list(md.scenes_dir(corpus_copy, "dev").glob(".lock*"))
