"""`avse enhance` and `avse separate`: outputs (wav + mp4 with the input's video stream), fallbacks said aloud, refusals, one-line errors."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from avse.cli import main
from avse.config import DEFAULT_SHIFTS
from tests.test_api import make_checkpoints, speechlike

REAL_GRID = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "grid"


@pytest.fixture()
def shipped(tmp_path_factory, monkeypatch) -> Path:
    """Tiny random models standing in for the shipped ones (avse.api.PRETRAINED_DIR points at them)."""
    import avse.api

    folder = tmp_path_factory.getbasetemp() / "shipped"
    if not folder.is_dir():
        folder.mkdir()
        make_checkpoints(folder)  # av, av_causal, audio, separate .avse.pt: the shipped file names
    monkeypatch.setattr(avse.api, "PRETRAINED_DIR", folder)
    return folder


@pytest.fixture(scope="module")
def blank_video(tmp_path_factory) -> Path:
    """1.2 s of grey frames (no face) with a noisy-speech-like audio track."""
    from avse.video.io import write_video

    path = tmp_path_factory.mktemp("video") / "talk.mp4"
    write_video(path, np.full((30, 64, 80, 3), 128, np.uint8), audio=speechlike(19200), preset="ultrafast")
    return path


def _need_mediapipe() -> None:
    from avse.video.detect import mediapipe_available

    if not mediapipe_available():
        pytest.skip("MediaPipe is not installed")


def _video_packets(path: Path) -> list[bytes]:
    import av

    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(c.streams.video[0]) if p.size]


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_enhance_video_writes_wav_and_mp4_and_says_it_fell_back(shipped, blank_video, tmp_path, capsys):
    _need_mediapipe()
    code = main(["enhance", str(blank_video), "-o", str(tmp_path / "clean.wav"), "--quiet"])
    out = capsys.readouterr()
    assert code == 0, out.err
    lines = out.out.strip().splitlines()
    assert len(lines) == 2 and "AUDIO-ONLY" in lines[0] and "no face" in lines[0]
    assert _listing(tmp_path) == ["clean.mp4", "clean.wav"]  # nothing else (no temporaries)
    info = sf.info(str(tmp_path / "clean.wav"))
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    assert 19200 <= info.frames <= 19200 + 1024  # the video's track as decoded (AAC pads its last frame)
    from avse.audio.io import load_audio

    audio, sr = load_audio(tmp_path / "clean.mp4")
    assert sr == 16000 and abs(len(audio) - 19200) <= 1024 and np.max(np.abs(audio)) > 0  # the AAC track decodes
    assert _video_packets(tmp_path / "clean.mp4") == _video_packets(blank_video)  # copied, not re-encoded


def test_enhance_audio_file_writes_a_wav_only(shipped, tmp_path, capsys):
    import soundfile

    src = tmp_path / "noisy.wav"
    soundfile.write(str(src), speechlike(44100), 44100, subtype="PCM_16")
    assert main(["enhance", str(src), "-o", str(tmp_path / "out" / "clean.wav")]) == 0
    assert "no video" in capsys.readouterr().out
    assert _listing(tmp_path / "out") == ["clean.wav"]
    info = sf.info(str(tmp_path / "out" / "clean.wav"))
    assert info.samplerate == 16000 and info.frames == 16000  # documented: always 16 kHz


def test_postfilter_option_changes_the_output_and_refuses_bad_strengths(shipped, tmp_path, capsys):
    src = tmp_path / "noisy.wav"
    rng = np.random.default_rng(0)
    sf.write(str(src), speechlike(32000) + 0.05 * rng.standard_normal(32000).astype(np.float32), 16000)
    assert main(["enhance", str(src), "-o", str(tmp_path / "plain.wav"), "--postfilter", "0", "--quiet"]) == 0
    assert main(["enhance", str(src), "-o", str(tmp_path / "pf.wav"), "--postfilter", "2", "--quiet"]) == 0
    plain, pf = sf.read(str(tmp_path / "plain.wav"))[0], sf.read(str(tmp_path / "pf.wav"))[0]
    assert plain.shape == pf.shape and np.abs(plain - pf).max() > 1e-3
    assert np.sum(pf**2) < np.sum(plain**2)  # it only ever turns down
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["enhance", str(src), "-o", str(tmp_path / "bad.wav"), "--postfilter", "-1"])
    assert "strength" in capsys.readouterr().err
    assert not (tmp_path / "bad.wav").exists()


def test_audio_option_replaces_the_video_track(shipped, blank_video, tmp_path):
    _need_mediapipe()
    other = tmp_path / "other.wav"
    sf.write(str(other), speechlike(8000, seed=7), 16000)
    assert main(["enhance", str(blank_video), "--audio", str(other), "-o", str(tmp_path / "o.wav"), "--quiet"]) == 0
    assert sf.info(str(tmp_path / "o.wav")).frames == 8000


def test_progress_bar_over_chunks_unless_quiet(shipped, tmp_path, capsys):
    src = tmp_path / "long.wav"
    sf.write(str(src), speechlike(48000), 16000)
    assert main(["enhance", str(src), "-o", str(tmp_path / "a.wav"), "--model", "audio", "--chunk", "0.5"]) == 0
    err = capsys.readouterr().err
    assert "chunks" in err and "/8" in err  # 3 s in 0.48 s chunks (12 frames) overlapping by 3 frames
    assert main(["enhance", str(src), "-o", str(tmp_path / "b.wav"), "--model", "audio", "--chunk", "0.5", "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_refuses_to_overwrite_its_input(shipped, blank_video, tmp_path, capsys):
    src = tmp_path / "in.wav"
    sf.write(str(src), speechlike(8000), 16000)
    before = src.read_bytes()
    for args in (["enhance", str(src), "-o", str(src)], ["enhance", str(blank_video), "-o", str(blank_video)]):
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "output is the input" in err
    assert src.read_bytes() == before


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "no such file"),
        ("corrupt", "in.wav"),
        ("model", "unknown model 'nope'"),
        ("face", "--face"),
        ("suffix", ".wav"),
        ("mp4 for audio", "has no video"),
        ("folder is a file", "is a file, not a folder"),
    ],
)
def test_one_line_errors_and_nothing_written(shipped, tmp_path, capsys, case, message):
    src = tmp_path / "in.wav"
    if case == "corrupt":
        src.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt junk")
    elif case != "missing":
        sf.write(str(src), speechlike(8000), 16000)
    out = tmp_path / "out"
    args = {
        "missing": ["enhance", str(src), "-o", str(out / "a.wav")],
        "corrupt": ["enhance", str(src), "-o", str(out / "a.wav")],
        "model": ["enhance", str(src), "-o", str(out / "a.wav"), "--model", "nope"],
        "face": ["enhance", str(src), "-o", str(out / "a.wav"), "--face", "1,2,3"],
        "suffix": ["enhance", str(src), "-o", str(out / "a.flac")],
        "mp4 for audio": ["enhance", str(src), "-o", str(out / "a.mp4")],
        "folder is a file": ["enhance", str(src), "-o", str(tmp_path / "f.txt" / "a.wav")],
    }[case]
    if case == "folder is a file":
        (tmp_path / "f.txt").write_text("keep")
    try:
        code = main(args)
    except SystemExit as exit_:  # argparse refuses bad option values itself
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not out.exists()
    if case == "folder is a file":
        assert (tmp_path / "f.txt").read_text() == "keep"


def test_a_failure_while_muxing_leaves_nothing_behind(shipped, blank_video, tmp_path, capsys, monkeypatch):
    _need_mediapipe()
    import avse.api
    from avse.errors import MediaError

    def broken(*args, **kwargs):
        raise MediaError(blank_video, "disk full")

    monkeypatch.setattr(avse.api, "mux_audio", broken)
    out = tmp_path / "out"
    out.mkdir()
    assert main(["enhance", str(blank_video), "-o", str(out / "a.wav"), "--quiet"]) == 2
    assert "disk full" in capsys.readouterr().err
    assert _listing(out) == []  # not even the wav


def test_separate_audio_file_gives_two_sources(shipped, tmp_path, capsys):
    src = tmp_path / "mix.wav"
    sf.write(str(src), speechlike(24000), 16000)
    assert main(["separate", str(src), "-o", str(tmp_path / "sep"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "blind" in out and re.search(r"levels against the input: source0 [+-]\d+\.\d dB", out)
    assert _listing(tmp_path / "sep") == ["source0.wav", "source1.wav"]
    assert all(sf.info(str(tmp_path / "sep" / n)).frames == 24000 for n in ("source0.wav", "source1.wav"))


def test_separate_video_without_faces_falls_back_to_blind_with_videos(shipped, blank_video, tmp_path, capsys):
    _need_mediapipe()
    assert main(["separate", str(blank_video), "-o", str(tmp_path / "sep"), "--quiet"]) == 0
    assert "no face" in capsys.readouterr().out
    assert _listing(tmp_path / "sep") == ["source0.mp4", "source0.wav", "source1.mp4", "source1.wav"]


def test_separate_refuses_a_file_as_output_folder(shipped, tmp_path, capsys):
    src = tmp_path / "mix.wav"
    sf.write(str(src), speechlike(8000), 16000)
    assert main(["separate", str(src), "-o", str(src)]) == 2
    assert "is a file" in capsys.readouterr().err


# --------------------------------------------------------------------------- real GRID clips (slow)


def _grid_clip() -> Path:
    clips = sorted(REAL_GRID.glob("*.mpg")) if REAL_GRID.is_dir() else []
    if not clips:
        pytest.skip(f"no real GRID clips in {REAL_GRID}")
    _need_mediapipe()
    return clips[0]


@pytest.mark.slow
def test_enhance_real_grid_clip_audio_visually(shipped, tmp_path, capsys):
    clip = _grid_clip()
    assert main(["enhance", str(clip), "-o", str(tmp_path / "grid.wav"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "audio-visual" in out and "AUDIO-ONLY" not in out
    assert _listing(tmp_path) == ["grid.mp4", "grid.wav"]
    assert len(_video_packets(tmp_path / "grid.mp4")) == len(_video_packets(clip)) == 75
    from avse.audio.io import load_audio

    wav, _ = load_audio(tmp_path / "grid.wav")
    aac, _ = load_audio(tmp_path / "grid.mp4")
    n = min(len(wav), len(aac))
    assert abs(len(wav) - 48000) < 640 and np.corrcoef(wav[:n], aac[:n])[0, 1] > 0.99  # the same audio, in sync


@pytest.mark.slow
def test_separate_real_grid_clip_gives_one_voice_per_face(shipped, tmp_path, capsys):
    clip = _grid_clip()
    assert main(["separate", str(clip), "-o", str(tmp_path / "sep"), "--quiet"]) == 0
    assert "audio-visual" in capsys.readouterr().out
    assert _listing(tmp_path / "sep") == ["face0.mp4", "face0.wav"]


@pytest.mark.slow
def test_separate_two_grid_talkers_side_by_side(shipped, tmp_path, capsys):
    """Two GRID clips side by side, their voices mixed: one output per face, left to right."""
    clip = _grid_clip()
    other = sorted(REAL_GRID.glob("*.mpg"))[-1]
    from avse.video.io import read_video, write_video
    from avse.video.shift import video_audio

    a, b = read_video(clip, with_audio=False), read_video(other, with_audio=False)
    n = min(len(a.frames), len(b.frames))
    mix = 0.5 * (video_audio(clip)[: n * 640] + video_audio(other)[: n * 640])
    video = tmp_path / "two.mp4"
    write_video(video, np.concatenate([a.frames[:n], b.frames[:n]], axis=2), audio=mix, preset="ultrafast")
    assert main(["separate", str(video), "-o", str(tmp_path / "sep"), "--quiet", "--assign", "av"]) == 0
    out = capsys.readouterr().out
    assert "2 voice(s), audio-visual" in out and "face0, face1" in out
    assert _listing(tmp_path / "sep") == ["face0.mp4", "face0.wav", "face1.mp4", "face1.wav"]


def _side_by_side(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """Two real GRID talkers side by side, their voices mixed at 0 dB -> (video, left voice [T], right voice [T])."""
    from avse.video.io import read_video, write_video
    from avse.video.shift import video_audio

    clip = _grid_clip()
    other = sorted(REAL_GRID.glob("*.mpg"))[-1]
    a, b = read_video(clip, with_audio=False), read_video(other, with_audio=False)
    n = min(len(a.frames), len(b.frames))
    left, right = video_audio(clip)[: n * 640], video_audio(other)[: n * 640]
    right = right * np.sqrt(np.sum(left**2) / np.sum(right**2))
    video = tmp_path / "two.mp4"
    write_video(video, np.concatenate([a.frames[:n], b.frames[:n]], axis=2), audio=0.45 * (left + right), preset="ultrafast")
    return video, 0.45 * left, 0.45 * right


@pytest.mark.slow
def test_separate_gives_two_real_faces_their_voices_by_lip_sync(tmp_path, capsys):
    """The shipped models: the blind separator's outputs go to the faces whose lips they follow."""
    from avse.api import PRETRAINED_DIR
    from avse.audio.io import load_audio
    from avse.evaluation.metrics import si_sdr

    if not (PRETRAINED_DIR / "separate.avse.pt").is_file():
        pytest.skip("no shipped separate model")
    video, left, right = _side_by_side(tmp_path)
    assert main(["separate", str(video), "-o", str(tmp_path / "sep"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "2 voice(s), blind, by lip sync" in out and "face0 <- source" in out
    mix = left + right
    for name, own, other in (("face0", left, right), ("face1", right, left)):
        y = load_audio(tmp_path / "sep" / f"{name}.wav", sample_rate=16000)[0]
        m = min(len(y), len(own))
        assert si_sdr(y[:m], own[:m]) > si_sdr(mix[:m], own[:m]) + 3.0  # its own voice, clearer than in the mixture
        assert si_sdr(y[:m], own[:m]) > si_sdr(y[:m], other[:m]) + 10.0  # and not the other face's


def _turns(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """Two real GRID talkers side by side taking turns, each face still while the other talks -> (video, each face's
    own voice: its turn, then silence [T])."""
    from avse.video.io import read_video, write_video
    from avse.video.shift import video_audio

    clip, other = _grid_clip(), sorted(REAL_GRID.glob("*.mpg"))[-1]
    a, b = read_video(clip, with_audio=False).frames, read_video(other, with_audio=False).frames
    na, nb = len(a), len(b)
    first, second = video_audio(clip)[: na * 640], video_audio(other)[: nb * 640]
    first, second = np.pad(first, (0, na * 640 - len(first))), np.pad(second, (0, nb * 640 - len(second)))
    second = second * np.sqrt(np.sum(first**2) / np.sum(second**2))
    left = np.concatenate([a, np.repeat(a[-1:], nb, axis=0)])
    right = np.concatenate([np.repeat(b[:1], na, axis=0), b])
    video = tmp_path / "turns.mp4"
    own = {"face0": np.concatenate([first, 0 * second]) * 0.45, "face1": np.concatenate([0 * first, second]) * 0.45}
    write_video(video, np.concatenate([left, right], axis=2), audio=own["face0"] + own["face1"], preset="ultrafast")
    return video, own


@pytest.mark.slow
def test_separate_gives_real_faces_their_own_turns(tmp_path, capsys):
    """Two real talkers taking turns: with the shipped models each face's output holds its own turn."""
    from avse.api import PRETRAINED_DIR
    from avse.audio.io import load_audio
    from avse.evaluation.metrics import si_sdr

    if not (PRETRAINED_DIR / "separate.avse.pt").is_file():
        pytest.skip("no shipped separate model")
    video, own = _turns(tmp_path)
    assert main(["separate", str(video), "-o", str(tmp_path / "sep"), "--quiet"]) == 0
    assert "blind, by lip sync" in capsys.readouterr().out
    mix = own["face0"] + own["face1"]
    for name in ("face0", "face1"):
        y = load_audio(tmp_path / "sep" / f"{name}.wav", sample_rate=16000)[0]
        m = min(len(y), len(mix))
        assert si_sdr(y[:m], own[name][:m]) > si_sdr(mix[:m], own[name][:m]) + 3.0, name


@pytest.mark.slow
def test_separate_follows_turns_when_the_blind_model_keeps_both_in_one_output(tmp_path):
    """A blind model that puts both turns in its first output (as the shipped one often does): the pairing changes
    with the turn, so each real face gets the output during its own turn and the quiet one during the other's."""
    import torch

    from avse.api import Separator
    from avse.evaluation.metrics import si_sdr
    from avse.models.tasnet import ConvTasNet, TasNetConfig

    class BothInOne(ConvTasNet):
        def forward(self, mixture):  # [B, T] -> [B, 2, T]: all of it, and a trace
            return torch.stack([0.999 * mixture, 0.001 * mixture], 1)

    video, own = _turns(tmp_path)
    blind = BothInOne(TasNetConfig(n_filters=16, kernel_size=16, bottleneck=8, hidden=16, skip=8, n_blocks=2, n_repeats=1,
                                   n_sources=2, output="consistent"))
    mix = own["face0"] + own["face1"]
    sep = Separator(blind, av="av")
    y = sep.separate(mix, 16000, video=video)
    turns = sep.last_info["assignment"]["turns"]
    assert sep.last_info["mode"] == "blind, by lip sync" and len(turns) == 2, turns
    assert turns[0]["sources"] == [0, 1] and turns[1]["sources"] == [1, 0] and 2.0 < turns[1]["start_s"] < 4.5, turns
    for k, name in enumerate(("face0", "face1")):
        m = min(y.shape[1], len(mix))
        assert si_sdr(y[k, :m], own[name][:m]) > si_sdr(mix[:m], own[name][:m]) + 10.0, name


@pytest.mark.slow
def test_separate_one_voice_goes_to_the_talker_and_silence_to_the_listener(tmp_path, monkeypatch):
    """A blind model that hears one voice, on a real talker beside a listener (a face held still): the talker gets
    the whole input (``one_voice``) and the listener the near-silent output. Where the face left with that output does speak
    (``missed_talker``), "auto" runs the audio-visual model per face instead."""
    import torch

    import avse.talking.expert as expert_mod
    from avse.api import SILENT_OUTPUT_DB, Separator, output_levels_db
    from avse.models.tasnet import ConvTasNet, TasNetConfig
    from avse.video.io import read_video, write_video
    from avse.video.shift import video_audio

    class OneVoice(ConvTasNet):
        def forward(self, mixture):  # [B, T] -> [B, 2, T]: all of it, and a trace
            return torch.stack([0.999 * mixture, 0.001 * mixture], 1)

    clip, other = _grid_clip(), sorted(REAL_GRID.glob("*.mpg"))[-1]
    a, b = read_video(clip, with_audio=False).frames, read_video(other, with_audio=False).frames
    n = min(len(a), len(b))
    voice = 0.5 * video_audio(clip)[: n * 640]
    video = tmp_path / "listener.mp4"
    write_video(video, np.concatenate([a[:n], np.repeat(b[:1], n, axis=0)], axis=2), audio=voice, preset="ultrafast")
    blind = OneVoice(TasNetConfig(n_filters=16, kernel_size=16, bottleneck=8, hidden=16, skip=8, n_blocks=2, n_repeats=1,
                                  n_sources=2, output="consistent"))
    sep = Separator(blind, av="av")
    y = sep.separate(voice, 16000, video=video)
    assert sep.last_info["mode"] == "blind, by lip sync" and sep.last_info["assignment"]["sources"] == [0, 1]
    m = min(y.shape[1], len(voice))
    assert sep.last_info["assignment"]["one_voice"] == "face0"  # one voice, the still face shows no sync with the trace
    assert np.allclose(y[0, :m], voice[:m], atol=1e-5)  # so the talker gets the whole input, not the model's 0.999 of it
    assert output_levels_db(y[1:2], voice)[0] < SILENT_OUTPUT_DB  # the listener: near silent, not the talker's voice
    monkeypatch.setattr(expert_mod, "missed_talker", lambda levels, res: "face 1 speaks in another output")
    y = sep.separate(voice, 16000, video=video)
    assert y.shape[0] == 2 and sep.last_info["mode"] == "audio-visual"
    assert sep.last_info["assign_reason"] == "face 1 speaks in another output"


def test_separate_prints_each_turns_pairing(tmp_path, monkeypatch, capsys):
    """When the pairing changes, the CLI says each turn's pairing rather than the whole clip's."""
    import avse.api

    res = {"seconds": 6.0, "names": ["face0", "face1"], "mode": "blind, by lip sync", "model": "separate", "reason": None,
           "levels_db": [-3.0, -4.0], "outputs": [str(tmp_path / "face0.wav"), str(tmp_path / "face1.wav")],
           "assignment": {"sources": [1, 0], "lse_c": [[0.02, 0.05], [0.06, 0.01]],
                          "turns": [{"start_s": 0.0, "sources": [0, 1]}, {"start_s": 3.0, "sources": [1, 0]}]}}
    monkeypatch.setattr(avse.api, "separate_file", lambda *a, **k: res)
    assert main(["separate", str(tmp_path / "in.mp4"), "-o", str(tmp_path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "turns: from 0.0 s face0 <- source0, face1 <- source1; from 3.0 s face0 <- source1, face1 <- source0" in out
    assert "whole clip" in out and "face0 <- source1 (" not in out
    res["assignment"]["turns"] = res["assignment"]["turns"][:1]
    assert main(["separate", str(tmp_path / "in.mp4"), "-o", str(tmp_path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "face0 <- source1 (0.020, 0.050)" in out and "turns:" not in out and "one voice" not in out
    res["assignment"]["one_voice"] = "face1"
    assert main(["separate", str(tmp_path / "in.mp4"), "-o", str(tmp_path), "--quiet"]) == 0
    assert "one voice: face1 talks and gets the whole input" in capsys.readouterr().out


def test_enhance_points_to_separate_when_the_video_has_several_faces(tmp_path, monkeypatch, capsys):
    import avse.api

    res = {"seconds": 3.0, "mode": "audio-visual", "model": "av", "reason": None, "chunks": 1, "seconds_frontend": 1.0,
           "seconds_model": 0.5, "face": {"track": 0, "choice": "audio", "n_tracks": 3, "n_faces": 2},
           "outputs": [str(tmp_path / "o.wav"), str(tmp_path / "o.mp4")]}
    monkeypatch.setattr(avse.api, "enhance_file", lambda *a, **k: res)
    assert main(["enhance", str(tmp_path / "in.mp4"), "-o", str(tmp_path / "o.wav"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "lips of the face whose lips follow the sound" in out and "note: 2 faces in the video" in out
    assert "avse separate" in out
    res["face"]["n_faces"] = 1  # one face (a brief false detection is no candidate): no note
    assert main(["enhance", str(tmp_path / "in.mp4"), "-o", str(tmp_path / "o.wav"), "--quiet"]) == 0
    assert "note:" not in capsys.readouterr().out


def test_separate_says_when_one_voice_got_the_whole_input(tmp_path, monkeypatch, capsys):
    import avse.api

    res = {"seconds": 3.0, "names": ["source0", "source1"], "mode": "blind", "model": "separate", "reason": "no video was given",
           "levels_db": [0.0, -120.0], "outputs": [str(tmp_path / "source0.wav"), str(tmp_path / "source1.wav")],
           "one_voice": "source0"}
    asked: list[dict] = []
    monkeypatch.setattr(avse.api, "separate_file", lambda *a, **k: asked.append(k) or res)
    assert main(["separate", str(tmp_path / "in.wav"), "-o", str(tmp_path), "--quiet", "--no-overlap-check"]) == 0
    assert asked[-1]["overlap"] is False
    assert main(["separate", str(tmp_path / "in.wav"), "-o", str(tmp_path), "--quiet", "--shifts", "4"]) == 0
    assert asked[-1]["shifts"] == 4
    assert main(["separate", str(tmp_path / "in.wav"), "-o", str(tmp_path), "--quiet"]) == 0
    assert asked[-1]["overlap"] is True and asked[-1]["shifts"] == DEFAULT_SHIFTS
    for bad in ("0", "-1", "2.5", "two"):
        with pytest.raises(SystemExit) as e:
            main(["separate", str(tmp_path / "in.wav"), "-o", str(tmp_path), "--quiet", "--shifts", bad])
        assert e.value.code == 2
    out = capsys.readouterr().out
    assert "one voice: the blind model split off a trace of it; source0 gets the whole input" in out
    assert "source1 -120.0 dB (near silent)" in out
    res["overlap_share"] = 0.031  # the overlap detector decided
    assert main(["separate", str(tmp_path / "in.wav"), "-o", str(tmp_path), "--quiet"]) == 0
    assert ("one voice: the blind model split it (two voices at once on 3% of the active frames); source0 gets the "
            "whole input") in capsys.readouterr().out
    res["speaker_similarity"], res["same_speaker"] = 0.912, True  # ... and a speaker encoder (Python only) heard one voice
    assert main(["separate", str(tmp_path / "in.wav"), "-o", str(tmp_path), "--quiet"]) == 0
    assert ("two voices at once on 3% of the active frames, the same voice in both outputs (similarity 0.91)); "
            "source0 gets the whole input") in capsys.readouterr().out


def test_enhance_assign_reaches_the_enhancer_and_its_choice_is_said(tmp_path, monkeypatch, capsys):
    import avse.api

    got: dict = {}
    res = {"seconds": 3.0, "mode": "audio-visual", "model": "av", "reason": None, "chunks": 1, "seconds_frontend": 1.0,
           "seconds_model": 0.5, "face": {"track": 0, "choice": "only", "n_tracks": 1, "n_faces": 1},
           "talker": {"used": "blind", "model": "separate", "why": "a second voice (80% voiced, -4.0 dB): the lips follow output 1"},
           "outputs": [str(tmp_path / "o.wav"), str(tmp_path / "o.mp4")]}
    monkeypatch.setattr(avse.api, "enhance_file", lambda *a, **k: got.update(k) or res)
    assert main(["enhance", str(tmp_path / "in.mp4"), "-o", str(tmp_path / "o.wav"), "--quiet"]) == 0
    assert got["assign"] == "auto" and got["separator"] == "separate"
    assert "the talker's voice from the blind model 'separate': a second voice" in capsys.readouterr().out
    res["talker"] = {"used": "av", "why": "no second voice (the other output is 12% voiced: noise)"}
    assert main(["enhance", str(tmp_path / "in.mp4"), "-o", str(tmp_path / "o.wav"), "--quiet", "--assign", "av",
                 "--separator", "sep.avse.pt"]) == 0
    assert got["assign"] == "av" and got["separator"] == "sep.avse.pt" and got["shifts"] == DEFAULT_SHIFTS
    assert "from the audio-visual model: no second voice" in capsys.readouterr().out
    assert main(["enhance", str(tmp_path / "in.mp4"), "-o", str(tmp_path / "o.wav"), "--quiet", "--shifts", "4"]) == 0
    assert got["shifts"] == 4
    with pytest.raises(SystemExit) as e:
        main(["enhance", str(tmp_path / "in.mp4"), "-o", str(tmp_path / "o.wav"), "--shifts", "0"])
    assert e.value.code == 2
    with pytest.raises(SystemExit):
        main(["enhance", str(tmp_path / "in.mp4"), "-o", str(tmp_path / "o.wav"), "--assign", "lips"])
    assert "invalid choice: 'lips'" in capsys.readouterr().err


def test_a_separator_that_cannot_be_loaded_stops_enhance_before_any_work(shipped, blank_video, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["enhance", str(blank_video), "-o", str(out / "a.wav"), "--separator", "nope", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown model 'nope'" in err
    assert not out.exists()
    assert main(["enhance", str(blank_video), "-o", str(out / "a.wav"), "--separator", "nope", "--assign", "av",
                 "--quiet"]) == 0  # --assign av never runs it


@pytest.mark.slow
def test_separate_one_real_face_over_another_talker_asks_the_lips(tmp_path, capsys):
    """One GRID face, another GRID talker's voice mixed in at 0 dB: avse separate gives the face one voice and says
    whose output it is, as avse enhance's check for a second voice decides."""
    from avse.api import PRETRAINED_DIR
    from avse.video.io import read_video, write_video
    from avse.video.shift import video_audio

    if not (PRETRAINED_DIR / "separate.avse.pt").is_file() or not (PRETRAINED_DIR / "sync_expert.avse.pt").is_file():
        pytest.skip("no shipped separate model or sync expert")
    clip = _grid_clip()
    other = sorted(REAL_GRID.glob("*.mpg"))[-1]
    frames = read_video(clip, with_audio=False).frames
    own, voice = video_audio(clip)[: len(frames) * 640], video_audio(other)
    voice = np.resize(voice, len(own)) * np.sqrt(np.sum(own**2) / np.sum(np.resize(voice, len(own)) ** 2))
    video = tmp_path / "one.mp4"
    write_video(video, frames, audio=0.45 * (own + voice), preset="ultrafast")
    assert main(["separate", str(video), "-o", str(tmp_path / "sep"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"one face: its voice from (the blind model 'separate'|the audio-visual model): \S", out), out
    assert _listing(tmp_path / "sep") == ["face0.mp4", "face0.wav"]


@pytest.mark.slow
def test_enhance_a_real_grid_clip_over_another_talker_asks_the_lips(tmp_path, capsys):
    """The shipped models on a real GRID face with another GRID talker's voice mixed in at 0 dB: the front end, the
    blind model and the sync expert all run, and the talker's voice comes from one of the two models, said aloud."""
    from avse.api import PRETRAINED_DIR
    from avse.audio.io import save_wav
    from avse.video.shift import video_audio

    if not (PRETRAINED_DIR / "separate.avse.pt").is_file() or not (PRETRAINED_DIR / "sync_expert.avse.pt").is_file():
        pytest.skip("no shipped separate model or sync expert")
    clip = _grid_clip()
    other = sorted(REAL_GRID.glob("*.mpg"))[-1]
    own, voice = video_audio(clip), video_audio(other)
    voice = np.resize(voice, len(own)) * np.sqrt(np.sum(own**2) / np.sum(np.resize(voice, len(own)) ** 2))
    save_wav(tmp_path / "mix.wav", 0.45 * (own + voice), 16000)
    assert main(["enhance", str(clip), "--audio", str(tmp_path / "mix.wav"), "-o", str(tmp_path / "out.wav"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"the talker's voice from (the blind model 'separate'|the audio-visual model): \S", out), out
    assert _listing(tmp_path) == ["mix.wav", "out.mp4", "out.wav"]
