"""Alignment of a recording to its transcript: DTW, speech span, error measures, and accuracy against flite's phone times."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from avse import SAMPLE_RATE
from avse.data.align import (
    AlignmentError,
    align,
    boundary_errors,
    dtw_path,
    match_phones,
    speech_span,
    word_boundary_errors,
)
from avse.data.tts import PAUSE, Voice, espeak_to_arpabet, synthesize
from avse.data.tts.errors import TtsError
from avse.data.visemes import lip_trajectory


def _brute_dtw(cost: np.ndarray, penalty: float) -> float:
    n, m = cost.shape
    acc = np.full((n, m), np.inf)
    acc[0, 0] = cost[0, 0]
    for i in range(n):
        for j in range(m):
            if i == 0 and j == 0:
                continue
            best = np.inf
            if i and j:
                best = min(best, acc[i - 1, j - 1] + 2 * cost[i, j])
            if i:
                best = min(best, acc[i - 1, j] + cost[i, j] + penalty)
            if j:
                best = min(best, acc[i, j - 1] + cost[i, j] + penalty)
            acc[i, j] = best
    return acc[-1, -1] / (n + m)


@pytest.mark.parametrize("penalty", [0.0, 0.7])
def test_dtw_path_is_the_optimum_of_the_recursion(penalty):
    rng = np.random.default_rng(3)
    cost = rng.random((13, 17))
    path, total = dtw_path(cost, penalty)
    assert total == pytest.approx(_brute_dtw(cost, penalty), rel=1e-12)
    assert tuple(path[0]) == (0, 0) and tuple(path[-1]) == (12, 16)
    steps = np.diff(path, axis=0)
    assert np.all((steps >= 0) & (steps <= 1)) and np.all(steps.sum(1) >= 1)
    # the path's own cost, recomputed from its steps, is the total
    own = cost[0, 0] + sum(cost[i, j] * (2 if (di and dj) else 1) + (0 if (di and dj) else penalty)
                           for (i, j), (di, dj) in zip(path[1:], steps))
    assert own / 30 == pytest.approx(total, rel=1e-12)


def test_dtw_follows_a_clear_diagonal():
    x = np.sin(np.linspace(0, 20, 80))[:, None]
    y = np.sin(np.linspace(0, 20, 120))[:, None]
    path, _ = dtw_path(np.abs(x - y.T), penalty=0.1)
    # frame i of x matches frame ~1.5 i of y
    assert np.max(np.abs(path[:, 1] - 1.5 * path[:, 0])) < 6


def test_speech_span_finds_the_tone_and_none_in_silence():
    sr = SAMPLE_RATE
    x = np.zeros(2 * sr, np.float32)
    t = np.arange(int(0.8 * sr)) / sr
    x[int(0.5 * sr) : int(1.3 * sr)] = 0.5 * np.sin(2 * np.pi * 220 * t)
    x += 1e-4 * np.random.default_rng(0).standard_normal(len(x)).astype(np.float32)
    start, end = speech_span(x)
    assert abs(start - 0.5) < 0.03 and abs(end - 1.3) < 0.03
    assert speech_span(np.zeros(sr, np.float32)) is None
    with pytest.raises(AlignmentError, match="no speech"):
        align(np.zeros(sr, np.float32), "hello there")


def test_match_phones_and_boundary_errors():
    assert match_phones(list("abcd"), list("axcd")) == [(0, 0), (2, 2), (3, 3)]
    ref = [(PAUSE, 0.0, 0.1), ("s", 0.1, 0.2), ("eh", 0.2, 0.3), ("t", 0.3, 0.4), (PAUSE, 0.4, 0.5)]
    hyp = [(PAUSE, 0.0, 0.12), ("s", 0.12, 0.2), ("ih", 0.2, 0.31), ("t", 0.31, 0.45), (PAUSE, 0.45, 0.5)]
    # s: start 0.02, end 0.0 (eh differs); t: start 0.01, end 0.05
    assert np.allclose(np.sort(boundary_errors(ref, hyp)), [0.0, 0.01, 0.02, 0.05])
    assert np.allclose(word_boundary_errors([("Set", 0.1, 0.4)], [("set", 0.12, 0.45)]), [0.02, 0.05])
    assert word_boundary_errors([("set", 0.1, 0.4)], [("sat", 0.1, 0.4)]).size == 0


def test_other_languages_map_to_arpabet():
    assert espeak_to_arpabet("R^", "cs") == "zh"  # Czech r-caron
    assert espeak_to_arpabet("'a:", "cs") == "aa"
    assert espeak_to_arpabet("Wy", "nl") == "oy"
    assert espeak_to_arpabet("(en)", "nl") == PAUSE  # a language switch, no sound
    assert espeak_to_arpabet("k#", "nl") == "k"  # modifier dropped on the retry
    with pytest.raises(TtsError, match="no ARPAbet"):
        espeak_to_arpabet("@@@", "cs")


@pytest.mark.parametrize("language,text", [("cs", "Musíme je všechny pobít."), ("nl", "Laten we ze allemaal uitroeien.")])
def test_espeak_speaks_czech_and_dutch_with_phones(language, text):
    utt = synthesize(text, Voice("espeak", language))
    assert sum(p != PAUSE for p, _, _ in utt.phones) > 10
    assert utt.phones[0][1] == 0.0 and utt.phones[-1][2] == pytest.approx(utt.duration)


@pytest.mark.skipif(shutil.which("flite") is None, reason="flite not installed")
def test_alignment_error_against_flite_phone_times():
    # Measured here: median 10.5 ms, p90 37 ms over these sentences (flite kal16 vs the espeak-ng en-us aligner).
    sentences = ["Place the green box near the window.", "Bin blue at F two now.",
                 "The old man walked to the market in the rain.", "Lay red by S nine again."]
    errs, word_errs = [], []
    for text in sentences:
        utt = synthesize(text, Voice("flite", "kal16"))
        res = align(utt.audio, text, "en-us")
        assert res.phones[0][1] == 0.0 and res.phones[-1][2] == pytest.approx(utt.duration)
        assert all(a[2] == b[1] for a, b in zip(res.phones, res.phones[1:]))  # contiguous, like TTS phones
        assert lip_trajectory(res.phones, 10).shape == (10, 6)  # the face renderer takes them
        errs += list(boundary_errors(utt.phones, res.phones))
        word_errs += list(word_boundary_errors(utt.words, res.words))
    errs_ms = 1000 * np.array(errs)
    assert len(errs) > 60
    assert np.median(errs_ms) < 25.0 and np.percentile(errs_ms, 90) < 100.0
    assert np.median(1000 * np.array(word_errs)) < 30.0


def test_alignment_refuses_a_transcript_far_from_the_audio():
    utt = synthesize("Yes.", Voice("espeak", "en-us"))
    with pytest.raises(AlignmentError, match="lasts"):
        align(utt.audio, "This transcript is very much longer than the single word that was actually spoken here.")
