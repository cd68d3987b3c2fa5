"""The ``avse`` command: help, and one-line errors with a non-zero exit and nothing written."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from avse.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "avse.cli", *args], capture_output=True, text=True, timeout=300)


def _listing(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}


def test_usage_errors_are_one_line():
    out = run_cli("scenes", "build", "x", "--dataset", "dev", "--scenes", "3", "--snr-noise", "10")
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1 and "LOW,HIGH" in out.stderr


def test_jobs_zero_is_refused_before_anything_is_written(tmp_path, capsys):
    code = main(["synth", str(tmp_path / "c"), "--preset", "tiny", "--jobs", "0", "--quiet"])
    assert code == 2 and "--jobs" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_help_lists_the_commands():
    out = run_cli("--help")
    assert out.returncode == 0
    for cmd in ("demo", "synth", "scenes"):
        assert cmd in out.stdout
    assert run_cli("scenes", "render", "--help").returncode == 0


def test_upside_down_snr_range_is_one_line_error(corpus_copy, capsys):
    before = _listing(corpus_copy)
    code = main(["scenes", "build", str(corpus_copy), "--dataset", "dev", "--scenes", "3", "--snr-noise", "10,-10"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "snr_noise" in err
    assert _listing(corpus_copy) == before


def test_empty_metadata_list_is_one_line_error(corpus_copy, capsys):
    (corpus_copy / "metadata" / "masker_noise_list.json").write_text("[]")
    code = main(["scenes", "build", str(corpus_copy), "--dataset", "dev", "--scenes", "3"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "masker_noise_list.json" in err and "empty" in err


def test_malformed_metadata_list_is_one_line_error(corpus_copy, capsys):
    (corpus_copy / "metadata" / "target_speech_list.json").write_text('[{"wavfile": "x"')
    code = main(["scenes", "build", str(corpus_copy), "--dataset", "dev", "--scenes", "3"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "target_speech_list.json" in err


def test_truncated_target_wav_is_named_and_nothing_half_written(corpus_copy, capsys):
    scenes = json.loads((corpus_copy / "metadata" / "scenes.dev.json").read_text())
    wav = corpus_copy / "dev" / "targets" / f"{scenes[0]['target']['name']}.wav"
    data = wav.read_bytes()
    wav.write_bytes(data[: len(data) // 2])  # cut mid-speech: the header says more than is there
    out_dir = corpus_copy / "dev" / "scenes"
    shutil.rmtree(out_dir)
    code = main(["scenes", "render", str(corpus_copy), "--dataset", "dev", "--jobs", "1", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and f"{wav.name}: truncated" in err
    made = sorted(p.name for p in out_dir.iterdir() if not p.name.startswith("."))
    assert not any(".part" in name for name in made)
    for s in scenes:  # a scene is complete or absent; the broken one is absent
        outs = [n for n in made if n.startswith(f"{s['scene']}_")]
        assert len(outs) in (0, 4)
        if s["target"]["name"] == scenes[0]["target"]["name"]:
            assert outs == []


def test_output_folder_that_is_a_file_is_refused(tmp_path, capsys):
    f = tmp_path / "corpus"
    f.write_text("not a folder")
    code = main(["synth", str(f), "--preset", "tiny", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "is a file" in err and len(err.splitlines()) == 1
    assert f.read_text() == "not a folder"


@pytest.mark.slow
def test_scenes_commands_end_to_end(corpus_copy):
    shutil.rmtree(corpus_copy / "dev" / "scenes")
    out = run_cli("scenes", "build", str(corpus_copy), "--dataset", "dev", "--scenes", "5", "--seed", "2")
    assert out.returncode == 0, out.stderr
    first = (corpus_copy / "metadata" / "scenes.dev.json").read_bytes()
    assert run_cli("scenes", "build", str(corpus_copy), "--dataset", "dev", "--scenes", "5", "--seed", "2").returncode == 0
    assert (corpus_copy / "metadata" / "scenes.dev.json").read_bytes() == first
    out = run_cli("scenes", "render", str(corpus_copy), "--dataset", "dev", "--jobs", "2", "--shard", "0/2", "--quiet")
    assert out.returncode == 0, out.stderr
    names = sorted(p.name for p in (corpus_copy / "dev" / "scenes").iterdir() if not p.name.startswith("."))
    assert len(names) == 3 * 4  # scenes 0, 2, 4 of 5: three wavs and an mp4 each
    out = run_cli("scenes", "render", str(corpus_copy), "--dataset", "dev", "--jobs", "2", "--quiet")
    assert out.returncode == 0, out.stderr
    assert len([p for p in (corpus_copy / "dev" / "scenes").iterdir() if not p.name.startswith(".")]) == 5 * 4


@pytest.fixture(scope="module")
def blank_video(tmp_path_factory) -> Path:
    import numpy as np

    from avse.video.io import write_video

    path = tmp_path_factory.mktemp("blank") / "blank.mp4"
    write_video(path, np.full((30, 64, 64, 3), 90, np.uint8), audio=np.zeros(30 * 640, np.float32))
    return path


def test_frontend_no_face_is_one_line_and_writes_nothing(blank_video, tmp_path):
    out = run_cli("frontend", str(blank_video), "--out", str(tmp_path / "fe"))
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [f"avse: error: {blank_video}: no face was found in any of its 30 frames"]
    assert not (tmp_path / "fe").exists()


def test_sync_refuses_an_output_it_cannot_write_before_any_work(blank_video, tmp_path):
    for bad in (tmp_path, tmp_path / "fixed.mpg", blank_video):
        out = run_cli("sync", str(blank_video), "--write", str(bad))
        assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and str(bad) in out.stderr
        assert "no face" not in out.stderr  # refused before the front end ran


def test_evaluate_a_baseline_from_the_command_line(tiny_corpus, tmp_path, capsys):
    code = main(["evaluate", str(tiny_corpus), "--dataset", "dev", "--method", "oracle-irm", "--out", str(tmp_path / "ev"), "--jobs", "1", "--quiet"])
    assert code == 0
    summary = json.loads((tmp_path / "ev" / "summary.json").read_text())
    assert summary["n_items"] == 4 and summary["all"]["si_sdri"]["mean"] > 3
    assert (tmp_path / "ev" / "hist.png").stat().st_size > 0
