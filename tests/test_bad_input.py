"""Hostile or broken input: names in metadata that would leave the corpus, system errors, empty checkpoints.

Each must end in one line on stderr and exit code 2 (the code for every AvseError), never a traceback,
and never a file written outside the corpus.
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
