"""Tests for avse.data.metadata: loading, validation messages, corpus paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from avse.data import metadata as md
from avse.errors import MetadataError

SPEECH = [
    {"wavfile": "t001", "dataset": "train", "nsamples": 32000, "speaker": "spk1", "text": "hello", "engine": "espeak"},
    {"wavfile": "t002", "dataset": "dev", "nsamples": 16000, "speaker": 7},
]
NOISE = [{"ID": "n001", "class": "hum", "type": "noise", "dataset": "train", "nsamples": 48000, "gain": 0.5}]
SCENE = {
    "scene": "S00001",
    "dataset": "train",
    "target": {"name": "t001", "speaker": "spk1"},
    "duration": 32000,
    "interferer": {"type": "noise", "name": "n001", "offset": 12},
    "SNR": -3.1416,
    "pre_samples": 0,
    "post_samples": 0,
    "ours": [1, 2],
}


def _write(tmp_path: Path, obj, name: str = "list.json") -> Path:
    p = tmp_path / name
    p.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return p


def _one_line_error(fn, path: Path) -> str:
    with pytest.raises(MetadataError) as info:
        fn(path)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(str(path))
    assert info.value.path == path
    return info.value.problem


def test_valid_lists_load_and_keep_extra_fields(tmp_path):
    speech = md.load_speech_list(_write(tmp_path, SPEECH))
    assert speech == SPEECH and speech[0]["text"] == "hello"
    noise = md.load_noise_list(_write(tmp_path, NOISE, "n.json"))
    assert noise[0]["gain"] == 0.5 and noise[0]["class"] == "hum"
    scenes = md.load_scenes(_write(tmp_path, [SCENE], "s.json"))
    assert scenes == [SCENE]


@pytest.mark.parametrize("loader", [md.load_speech_list, md.load_noise_list, md.load_scenes])
def test_missing_invalid_notlist_empty(tmp_path, loader):
    assert _one_line_error(loader, tmp_path / "absent.json") == "no such file"
    assert "invalid JSON at line 2" in _one_line_error(loader, _write(tmp_path, '[\n{"a": }]', "bad.json"))
    assert "got a JSON object" in _one_line_error(loader, _write(tmp_path, {"a": 1}, "obj.json"))
    assert "empty list" in _one_line_error(loader, _write(tmp_path, [], "empty.json"))
    assert "is a folder" in _one_line_error(loader, tmp_path)


@pytest.mark.parametrize("field", ["wavfile", "dataset", "nsamples", "speaker"])
def test_speech_entry_missing_field(tmp_path, field):
    bad = [dict(SPEECH[0]), {k: v for k, v in SPEECH[1].items() if k != field}]
    problem = _one_line_error(md.load_speech_list, _write(tmp_path, bad))
    assert problem.startswith("entry 1") and f"missing field '{field}'" in problem


def test_bad_values_and_duplicates(tmp_path):
    bad = [dict(SPEECH[0], nsamples=0)]
    assert "'nsamples' must be a positive integer" in _one_line_error(md.load_speech_list, _write(tmp_path, bad))
    bad = [dict(SPEECH[0], nsamples=True)]
    assert "'nsamples' must be a positive integer" in _one_line_error(md.load_speech_list, _write(tmp_path, bad))
    dup = [SPEECH[0], dict(SPEECH[0], speaker="other")]
    assert "duplicate wavfile 't001'" in _one_line_error(md.load_speech_list, _write(tmp_path, dup))
    # the same name in two splits is fine
    assert len(md.load_speech_list(_write(tmp_path, [SPEECH[0], dict(SPEECH[0], dataset="dev")]))) == 2
    assert "expected an object" in _one_line_error(md.load_speech_list, _write(tmp_path, [SPEECH[0], 3]))
    wrong_type = [dict(NOISE[0], type="speech")]
    assert "field 'type' must be \"noise\"" in _one_line_error(md.load_noise_list, _write(tmp_path, wrong_type))
    no_class = [{k: v for k, v in NOISE[0].items() if k != "class"}]
    problem = _one_line_error(md.load_noise_list, _write(tmp_path, no_class))
    assert problem == "entry 0 (ID 'n001'): missing field 'class'"


def test_scene_nested_fields(tmp_path):
    scene = json.loads(json.dumps(SCENE))
    del scene["interferer"]["offset"]
    problem = _one_line_error(md.load_scenes, _write(tmp_path, [scene]))
    assert problem == "entry 0 (scene 'S00001'): missing field 'interferer.offset'"
    scene = json.loads(json.dumps(SCENE))
    del scene["target"]["name"]
    assert "missing field 'target.name'" in _one_line_error(md.load_scenes, _write(tmp_path, [scene]))
    scene = dict(SCENE, SNR="loud")
    assert "'SNR' must be a finite number" in _one_line_error(md.load_scenes, _write(tmp_path, [scene]))
    scene = dict(SCENE, interferer=dict(SCENE["interferer"], type="music"))
    assert "'interferer.type' must be" in _one_line_error(md.load_scenes, _write(tmp_path, [scene]))
    scene = dict(SCENE, interferers=[SCENE["interferer"], {"type": "noise", "name": "n2"}])
    assert "missing field 'interferers[1].offset'" in _one_line_error(md.load_scenes, _write(tmp_path, [scene]))
    assert "duplicate scene 'S00001'" in _one_line_error(md.load_scenes, _write(tmp_path, [SCENE, SCENE]))


def test_paths(tmp_path):
    root = tmp_path
    assert md.target_speech_list_path(root) == root / "metadata" / "target_speech_list.json"
    assert md.masker_speech_list_path(root) == root / "metadata" / "masker_speech_list.json"
    assert md.masker_noise_list_path(root) == root / "metadata" / "masker_noise_list.json"
    assert md.scenes_path(root, "dev") == root / "metadata" / "scenes.dev.json"
    paths = md.target_paths(root, "train", SPEECH[0])
    assert paths == {
        "wav": root / "train" / "targets" / "t001.wav",
        "video": root / "train" / "targets_video" / "t001.mp4",
        "landmarks": root / "train" / "targets_landmarks" / "t001.npz",
    }
    assert md.interferer_path(root, "train", NOISE[0]) == root / "train" / "interferers" / "noise" / "n001.wav"
    assert md.interferer_path(root, "dev", SPEECH[1]) == root / "dev" / "interferers" / "speech" / "t002.wav"
    assert md.interferer_path(root, "train", SCENE["interferer"]) == root / "train/interferers/noise/n001.wav"
    assert md.scenes_dir(root, "test") == root / "test" / "scenes"
    with pytest.raises(ValueError):
        md.interferer_wav_path(root, "train", "music", "x")
