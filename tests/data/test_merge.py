"""add_masker_speech / avse add-maskers: another corpus's masker voices added to a corpus."""

from __future__ import annotations

import json
import shutil

import pytest

from avse.data.metadata import interferer_wav_path, load_speech_list, masker_speech_list_path
from avse.errors import AvseError, ConfigError


def _two_corpora(tiny_corpus, tmp_path):
    """dst: the tiny corpus without its train masker speaker spk003; src: the tiny corpus (has it)."""
    dst = tmp_path / "dst"
    shutil.copytree(tiny_corpus, dst)
    path = masker_speech_list_path(dst)
    kept = [e for e in json.loads(path.read_text()) if not (e["dataset"] == "train" and e["speaker"] == "spk003")]
    path.write_text(json.dumps(kept))
    for e in json.loads(masker_speech_list_path(tiny_corpus).read_text()):
        if e["dataset"] == "train" and e["speaker"] == "spk003":
            interferer_wav_path(dst, "train", "speech", e["wavfile"]).unlink()
    return tiny_corpus, dst


def test_add_masker_speech_adds_the_matching_voices_once(tiny_corpus, tmp_path):
    from avse.data.datasets import DynamicMixDataset
    from avse.data.merge import add_masker_speech

    src, dst = _two_corpora(tiny_corpus, tmp_path)
    before = load_speech_list(masker_speech_list_path(dst))
    assert "spk003" not in DynamicMixDataset(dst, "train").pools["speech"].groups
    summary = add_masker_speech(src, dst, ["spk00[3]"])
    after = load_speech_list(masker_speech_list_path(dst))
    added = [e for e in after if e not in before]
    assert summary == {"added": len(added), "skipped": 0, "speakers": 1} and added
    assert all(e["speaker"] == "spk003" and e["dataset"] == "train" for e in added)
    for e in added:
        a, b = interferer_wav_path(src, "train", "speech", e["wavfile"]), interferer_wav_path(dst, "train", "speech", e["wavfile"])
        assert b.read_bytes() == a.read_bytes()
    assert "spk003" in DynamicMixDataset(dst, "train").pools["speech"].groups  # the corpus reads as one
    again = add_masker_speech(src, dst, ["spk003"])  # idempotent
    assert again == {"added": 0, "skipped": len(added), "speakers": 0}
    assert load_speech_list(masker_speech_list_path(dst)) == after


def test_add_masker_speech_refuses_bad_input_before_writing(tiny_corpus, tmp_path):
    from avse.data.merge import add_masker_speech

    src, dst = _two_corpora(tiny_corpus, tmp_path)
    listed = masker_speech_list_path(dst).read_text()
    with pytest.raises(ConfigError, match="no masker speech"):
        add_masker_speech(src, dst, ["nobody*"])
    with pytest.raises(AvseError, match="not a corpus"):
        add_masker_speech(tmp_path / "nothing", dst, ["spk003"])
    e = next(e for e in json.loads(masker_speech_list_path(src).read_text()) if e["speaker"] == "spk003")
    clash = interferer_wav_path(dst, "train", "speech", e["wavfile"])  # a stray file of that name, other audio
    clash.write_bytes(b"RIFF....")
    with pytest.raises(ConfigError, match="other audio"):
        add_masker_speech(src, dst, ["spk003"])
    assert masker_speech_list_path(dst).read_text() == listed  # nothing written


def test_cli_add_maskers(tiny_corpus, tmp_path, capsys):
    from avse.cli import main

    src, dst = _two_corpora(tiny_corpus, tmp_path)
    assert main(["add-maskers", str(src), str(dst), "--speaker", "spk003"]) == 0
    assert "masker recordings of 1 speakers added" in capsys.readouterr().out
    assert main(["add-maskers", str(src), str(dst), "--speaker", "nobody"]) != 0
    assert "no masker speech" in capsys.readouterr().err


def test_add_masker_speech_to_a_hard_linked_copy_leaves_the_original_list(tiny_corpus, tmp_path):
    import os

    from avse.data.merge import add_masker_speech

    src, base = _two_corpora(tiny_corpus, tmp_path)  # base: a corpus without spk003's maskers
    linked = tmp_path / "linked"
    shutil.copytree(base, linked, copy_function=os.link)  # as cp -al makes it
    original = masker_speech_list_path(base).read_text()
    assert add_masker_speech(src, linked, ["spk003"])["added"] > 0
    assert masker_speech_list_path(base).read_text() == original
    assert len(load_speech_list(masker_speech_list_path(linked))) > len(json.loads(original))
