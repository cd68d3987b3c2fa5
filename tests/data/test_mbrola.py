"""Tests for MBROLA voices: the .pho handling, the phone map, the opt-in engine and scripts/fetch_mbrola."""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from avse import SAMPLE_RATE
from avse.data.tts import (
    PAUSE,
    PHONES,
    ConfigError,
    EngineMissingError,
    TtsError,
    Voice,
    VoiceMissingError,
    available_engines,
    mbrola,
    speaker_voices,
    synthesize,
)
from avse.data.tts.mbrola import MBROLA_ENV, mbrola_voices, parse_pho, scale_pho
from avse.data.tts.phones import mbrola_to_arpabet
from avse.data.tts.speakers import available_voices

REPO = Path(__file__).resolve().parents[2]
MBROLA = Path(os.environ.get(MBROLA_ENV) or REPO / "data" / "mbrola")
needs_mbrola = pytest.mark.skipif(
    not (MBROLA / "usr" / "share" / "mbrola" / "us1" / "us1").is_file() or shutil.which("espeak-ng") is None,
    reason=f"no MBROLA voices in {MBROLA} (scripts/fetch_mbrola)",
)

PHO = """; a comment
_ 50
h 70
@ 20 0 179 50 185 100 191
l 65
@U 63 0 232 100 215
_ 150
"""


def test_parse_pho_reads_phones_durations_and_pitch() -> None:
    got = parse_pho(PHO)
    assert [(s, d) for s, d, _ in got] == [("_", 50), ("h", 70), ("@", 20), ("l", 65), ("@U", 63), ("_", 150)]
    assert got[2][2] == [(0.0, 179.0), (50.0, 185.0), (100.0, 191.0)]
    with pytest.raises(TtsError, match="would not read"):
        parse_pho("h seventy\n")


def test_scale_pho_keeps_total_time_and_shifts_pitch() -> None:
    phones = parse_pho(PHO)
    fast = scale_pho(phones, rate=1.3, pitch=12.0)
    # rounded on the running sum: the whole lasts the scaled total to within one ms
    assert abs(sum(d for _, d, _ in fast) - sum(d for _, d, _ in phones) / 1.3) <= 1.0
    assert fast[2][2] == [(0.0, 358.0), (50.0, 370.0), (100.0, 382.0)]  # an octave up
    same = scale_pho(phones, rate=1.0, pitch=0.0)
    assert [(s, d) for s, d, _ in same] == [(s, int(d)) for s, d, _ in phones]


@pytest.mark.parametrize(
    ("phone", "arpabet"),
    [
        ("_", PAUSE), ("p", "p"), ("k_h", "k"), ("kh", "k"), ("{", "ae"), ("@U", "ow"), ("AI", "ay"), ("r=", "er"),
        ("?a:", "aa"), ("i:", "iy"), ("ii", "iy"), ("a~", "aa"), ("am", "aa"), ("6~j~", "ay"), ("2:", "uh"), ("d[", "d"), ("e/", "eh"),
        ("y:", "uw"), ("S", "sh"), ("tS", "ch"), ("l/2", "l"), ("9~", "ah"), ("q", "g"),
    ],
)
def test_mbrola_phones_map_to_arpabet(phone: str, arpabet: str) -> None:
    assert mbrola_to_arpabet(phone, "de") == arpabet


def test_unknown_mbrola_phone_is_an_error() -> None:
    with pytest.raises(TtsError, match="no ARPAbet mapping"):
        mbrola_to_arpabet("%%", "de")


def test_mbrola_is_opt_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MBROLA_ENV, str(tmp_path))  # an empty folder: no voices
    assert all(v.engine != "mbrola" for v in available_voices())
    assert available_voices(("mbrola",)) == []
    with pytest.raises(EngineMissingError, match="fetch_mbrola"):
        speaker_voices(3, engines=("mbrola",))
    with pytest.raises(VoiceMissingError, match="fetch_mbrola"):
        synthesize("hello there", Voice("mbrola", "us1"))
    with pytest.raises(ConfigError, match="unknown TTS engine"):
        available_voices(("mbrolla",))


@needs_mbrola
def test_mbrola_voice_speaks_with_exact_phone_times(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MBROLA_ENV, str(MBROLA))
    text = "The kitchen was quiet all morning."
    u = synthesize(text, Voice("mbrola", "us1"))
    assert u.sample_rate == SAMPLE_RATE and u.audio.dtype == np.float32
    assert {p for p, _, _ in u.phones} <= PHONES and sum(p != PAUSE for p, _, _ in u.phones) >= 20
    assert u.phones[0][1] == 0.0 and abs(u.phones[-1][2] - u.duration) < 1e-6
    assert all(a[2] == b[1] for a, b in zip(u.phones, u.phones[1:]))  # contiguous
    # speech inside the phones, silence in the kept edges
    first = next(s for p, s, _ in u.phones if p != PAUSE)
    head = u.audio[: int(first * SAMPLE_RATE)]
    assert np.sqrt(np.mean(head**2)) < 0.01 < np.sqrt(np.mean(u.audio**2))
    # the same text and voice give the same samples; rate and pitch do what they say
    assert np.array_equal(u.audio, synthesize(text, Voice("mbrola", "us1")).audio)
    fast = synthesize(text, Voice("mbrola", "us1", rate=1.25))
    edges = 2 * 0.15  # the silence kept before and after the phones
    assert fast.duration - edges == pytest.approx((u.duration - edges) / 1.25, rel=0.03)
    low = synthesize(text, Voice("mbrola", "us1", pitch=-12.0))

    def f0(x: np.ndarray) -> float:  # the strongest autocorrelation lag in 60-400 Hz, over the loudest half second
        k = int(np.argmax(np.convolve(x**2, np.ones(8000), mode="valid")))
        seg = x[k : k + 8000] - x[k : k + 8000].mean()
        ac = np.correlate(seg, seg, mode="full")[len(seg) - 1 :]
        lo, hi = SAMPLE_RATE // 400, SAMPLE_RATE // 60
        return SAMPLE_RATE / (lo + int(np.argmax(ac[lo:hi])))

    assert f0(low.audio) == pytest.approx(f0(u.audio) / 2, rel=0.2)  # an octave down
    # another database: another speaker, the same phones for the same language
    other = synthesize(text, Voice("mbrola", "us2"))
    assert [p for p, _, _ in other.phones] == [p for p, _, _ in u.phones]
    assert not np.array_equal(other.audio[: len(u.audio)], u.audio[: len(other.audio)])


@needs_mbrola
def test_mbrola_speakers_are_recorded_voices_of_both_sexes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MBROLA_ENV, str(MBROLA))
    voices = mbrola_voices()
    assert {sex for _, _, sex in voices} == {"male", "female"}
    assert all(lang.split("-")[0] not in ("he", "ja") for _, lang, _ in voices)
    drawn = speaker_voices(12, seed=0, engines=("mbrola",))
    assert all(v.engine == "mbrola" for v in drawn) and len({v.name for v in drawn}) == 12
    mixed = speaker_voices(8, seed=0, engines=("mbrola", "espeak", "flite", "festival"))
    assert sum(v.engine == "mbrola" for v in mixed) == 4
    if "espeak" in available_engines():
        two = speaker_voices(12, seed=0, engines=("mbrola", "espeak"))
        assert [v.engine for v in two] == ["mbrola", "espeak"] * 6


def test_mbrola_asked_for_but_missing_is_an_error_even_beside_other_engines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MBROLA_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(EngineMissingError, match="fetch_mbrola"):
        speaker_voices(8, engines=("mbrola", "espeak", "flite", "festival"))


def _fake_deb(tmp: Path, name: str, files: dict[str, bytes]) -> Path:
    root = tmp / f"pkg_{name}"
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@example.org>\nDescription: test\n"
    )
    deb = tmp / f"{name}_1.0_all.deb"
    subprocess.run(["dpkg-deb", "-b", "--root-owner-group", str(root), str(deb)], check=True, capture_output=True)
    return deb


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb is not installed")
def test_fetch_mbrola_reads_the_archive_index_and_checks_hashes(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
    debs = {
        ("contrib", arch, "mbrola"): _fake_deb(tmp_path, "mbrola", {"usr/bin/mbrola": b"#!/bin/sh\n"}),
        ("non-free", "all", "mbrola-us1"): _fake_deb(tmp_path, "mbrola-us1", {"usr/share/mbrola/us1/us1": b"db"}),
        ("non-free", "all", "mbrola-de2"): _fake_deb(tmp_path, "mbrola-de2", {"usr/share/mbrola/de2/de2": b"db2"}),
    }
    stanzas: dict[tuple[str, str], list[str]] = {}
    for (component, a, name), deb in debs.items():
        pool = mirror / "pool" / component / deb.name
        pool.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(deb, pool)
        sha = hashlib.sha256(deb.read_bytes()).hexdigest()
        if name == "mbrola-de2":
            sha = "0" * 64  # a corrupt download must be refused
        stanzas.setdefault((component, a), []).append(
            f"Package: {name}\nVersion: 1.0\nFilename: pool/{component}/{deb.name}\nSize: {deb.stat().st_size}\nSHA256: {sha}\n"
        )
    for component, a in [("contrib", arch), ("non-free", "all")]:
        index = mirror / "dists" / "test" / component / f"binary-{a}" / "Packages.gz"
        index.parent.mkdir(parents=True)
        index.write_bytes(gzip.compress("\n".join(stanzas.get((component, a), [])).encode()))
    out = tmp_path / "out"
    cmd = [sys.executable, str(REPO / "scripts" / "fetch_mbrola"), "--mirror", mirror.as_uri(), "--suite", "test"]
    ok = subprocess.run([*cmd, "--voices", "us1", str(out)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert (out / "usr" / "share" / "mbrola" / "us1" / "us1").read_bytes() == b"db"
    assert "1 voices" in ok.stdout and (out / ".done" / "mbrola-us1").is_file()
    bad = subprocess.run([*cmd, "--voices", "de2", str(out)], capture_output=True, text=True)
    assert bad.returncode == 1 and "SHA256" in bad.stderr
    assert not (out / "usr" / "share" / "mbrola" / "de2").exists()
    unknown = subprocess.run([*cmd, "--voices", "xx9", str(out)], capture_output=True, text=True)
    assert unknown.returncode == 1 and "no such voice" in unknown.stderr


@needs_mbrola
def test_synth_plan_draws_mbrola_speakers_only_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from avse.config import synth_config
    from avse.data.synth import plan_speech

    monkeypatch.setenv(MBROLA_ENV, str(tmp_path))  # no MBROLA voices there
    without = [t.voice.id for t in plan_speech(synth_config("tiny"))]
    monkeypatch.setenv(MBROLA_ENV, str(MBROLA))
    assert [t.voice.id for t in plan_speech(synth_config("tiny"))] == without  # fetched but not asked for: the same corpus
    asked = plan_speech(synth_config("tiny", engines=("mbrola",)))
    assert {t.voice.engine for t in asked} == {"mbrola"}
    assert len({t.voice.name for t in asked}) == len({t.speaker for t in asked})  # one recorded speaker each


@needs_mbrola
@pytest.mark.slow
def test_avse_synth_makes_a_corpus_of_mbrola_speakers(tmp_path: Path) -> None:
    import json

    out = tmp_path / "corpus"
    proc = subprocess.run(
        [sys.executable, "-m", "avse.cli", "synth", str(out), "--preset", "tiny", "--engines", "mbrola", "--mbrola", str(MBROLA), "--quiet"],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    record = json.loads((out / "metadata" / "synth_config.json").read_text())
    assert record["config"]["engines"] == ["mbrola"]
    assert all(v.startswith("mbrola-") for v in record["voices"].values())
    targets = json.loads((out / "metadata" / "target_speech_list.json").read_text())
    lm = np.load(out / targets[0]["dataset"] / "targets_landmarks" / f"{Path(targets[0]['wavfile']).stem}.npz")
    assert len(lm["phone_symbols"]) >= 5 and lm["lips"].shape[1:] == (40, 2)


def test_avse_synth_refuses_mbrola_folder_without_the_engine(tmp_path: Path) -> None:
    from avse.cli import main

    assert main(["synth", str(tmp_path / "c"), "--preset", "tiny", "--mbrola", str(tmp_path), "--quiet"]) == 2
    assert not (tmp_path / "c").exists()


@needs_mbrola
def test_overlay_is_made_once_and_again_when_voices_change(tmp_path: Path) -> None:
    folder = tmp_path / "mb"
    shutil.copytree(MBROLA / "usr" / "bin", folder / "usr" / "bin")
    (folder / "usr" / "share" / "mbrola" / "us1").mkdir(parents=True)
    (folder / "usr" / "share" / "mbrola" / "us1" / "us1").symlink_to(MBROLA / "usr" / "share" / "mbrola" / "us1" / "us1")
    first = mbrola._espeak_data_overlay(folder)
    assert mbrola._espeak_data_overlay(folder) == first
    assert sorted(p.name for p in (first / "espeak-ng-data" / "mbrola").iterdir()) == ["us1"]
    (folder / "usr" / "share" / "mbrola" / "us2").mkdir()
    (folder / "usr" / "share" / "mbrola" / "us2" / "us2").symlink_to(MBROLA / "usr" / "share" / "mbrola" / "us2" / "us2")
    second = mbrola._espeak_data_overlay(folder)
    assert second != first and first.is_dir()  # a new folder; the old one is left to whoever uses it
    assert sorted(p.name for p in (second / "espeak-ng-data" / "mbrola").iterdir()) == ["us1", "us2"]
    assert [name for name, _, _ in mbrola._mbrola_voices(folder)] == ["us1", "us2"]


def test_voice_pool_asked_for_mbrola_voices_without_them_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from avse.training.overlap import VoicePool

    monkeypatch.setenv(MBROLA_ENV, str(tmp_path / "none"))
    with pytest.raises(EngineMissingError, match="fetch_mbrola"):
        VoicePool([], mbrola=2)


@needs_mbrola
def test_voice_pool_adds_each_mbrola_voice_as_a_speaker(monkeypatch: pytest.MonkeyPatch) -> None:
    from avse.training.overlap import VoicePool, mbrola_recordings

    monkeypatch.setenv(MBROLA_ENV, str(MBROLA))
    names = [name for name, _, _ in mbrola_voices()]
    pool = VoicePool([], mbrola=2)
    assert pool.speakers == sorted(f"mbrola:{n}" for n in names)
    assert all(len(clips) == 2 and all(c.dtype == np.int16 and np.abs(c).max() > 30000 and len(c) > SAMPLE_RATE
                                       for c in clips) for clips in pool.clips.values())
    # a voice's two sentences differ, and the same call gives the same audio
    first = mbrola_recordings(2)
    assert len(first["us1"][0]) != len(first["us1"][1]) or not np.array_equal(first["us1"][0], first["us1"][1])
    assert all(np.array_equal(a, b) for a, b in zip(first["us1"], mbrola_recordings(2)["us1"], strict=True))
    # another seed, other sentences
    assert not np.array_equal(first["us1"][0][:16000], mbrola_recordings(1, seed=1)["us1"][0][:16000])
