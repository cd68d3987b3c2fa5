"""Tests for offline TTS: voices, phone mapping, timing post-processing and each installed engine."""

from __future__ import annotations

import multiprocessing as mp
import shutil

import numpy as np
import pytest

from avse import SAMPLE_RATE
from avse.data import tts
from avse.data.tts import (
    ARPABET,
    ENGINES,
    KEEP_SILENCE_S,
    PAUSE,
    PEAK,
    PHONES,
    VOWELS,
    ConfigError,
    EngineMissingError,
    TtsError,
    Voice,
    VoiceMissingError,
    available_engines,
    speaker_voices,
    synthesize,
)
from avse.data.tts.espeak import _espeak_word_text
from avse.data.tts.flite import _words_from_phone_groups
from avse.data.tts.phones import festival_to_arpabet
from avse.data.tts.utterance import Raw, finalize
from avse.data.tts.voices import catalog_entry
from avse.errors import AvseError

# One voice per engine for the engine tests.
ENGINE_VOICE = {
    "espeak": Voice("espeak", "en-us", "f3"),
    "flite": Voice("flite", "slt"),
    "festival": Voice("festival", "kal_diphone"),
}
SENTENCES = ("place blue at F nine now", "bin red by eigh two soon", "the old teacher carried the heavy basket slowly")


def _need(engine: str) -> None:
    if engine not in available_engines():
        pytest.skip(f"{engine} is not installed here")


@pytest.fixture(scope="module")
def utterances() -> dict[str, list[tts.Utterance]]:
    """Each available engine speaking SENTENCES once (shared by the engine tests)."""
    return {e: [synthesize(t, ENGINE_VOICE[e]) for t in SENTENCES] for e in available_engines()}


def _frame_db(x: np.ndarray, hop: int = 160) -> np.ndarray:
    """Energy of non-overlapping frames of x [T] in dB re the loudest frame -> [T // hop]."""
    n = x.shape[0] // hop
    e = (x[: n * hop].astype(np.float64).reshape(n, hop) ** 2).mean(axis=1)
    db = 10.0 * np.log10(e + 1e-12)
    return db - db.max()


def _frame_labels(u: tts.Utterance, n: int, hop_s: float = 0.01) -> list[str]:
    """The phone under the centre of each of n frames."""
    centres = (np.arange(n) + 0.5) * hop_s
    out = []
    for c in centres:
        out.append(next(p for p, s, e in u.phones if s <= c < e))
    return out


def _median_f0(x: np.ndarray, sr: int = SAMPLE_RATE) -> float:
    """Median autocorrelation F0 (Hz) of the loud 40 ms frames of x [T]."""
    n, hop = 640, 160
    frames = np.stack([x[i : i + n] for i in range(0, x.shape[0] - n, hop)])  # [F, n]
    rms = np.sqrt((frames**2).mean(axis=1))
    frames = frames[rms > 0.2 * rms.max()]
    frames = frames - frames.mean(axis=1, keepdims=True)
    spec = np.fft.rfft(frames, 2 * n, axis=1)
    ac = np.fft.irfft(np.abs(spec) ** 2, axis=1)[:, :n]  # [F, n]
    lo, hi = sr // 400, sr // 60
    lag = lo + np.argmax(ac[:, lo:hi], axis=1)
    voiced = ac[np.arange(lag.shape[0]), lag] > 0.5 * ac[:, 0]
    return float(np.median(sr / lag[voiced]))


def test_median_f0_helper():
    t = np.arange(16000) / 16000
    assert _median_f0(np.sin(2 * np.pi * 125 * t)) == pytest.approx(125, rel=0.02)


# ---------------------------------------------------------------------------
# Pure logic (no engine needed)
# ---------------------------------------------------------------------------


def test_voice_validation_and_id():
    v = Voice("espeak", "en-us", "f3", pitch=1.5, rate=1.05)
    assert v.id == "espeak-en-us+f3-p+1.50-r1.050"
    assert Voice("flite", "slt").id == "flite-slt-p+0.00-r1.000"
    assert Voice("flite", "slt", pitch=-0.0).id == Voice("flite", "slt").id
    assert hash(v) == hash(Voice("espeak", "en-us", "f3", pitch=1.5, rate=1.05))
    with pytest.raises(ConfigError):
        Voice("sapi", "x")
    with pytest.raises(ConfigError):
        Voice("flite", "slt", variant="f3")
    with pytest.raises(ConfigError):
        Voice("flite", "slt", rate=0.2)
    with pytest.raises(ConfigError):
        Voice("flite", "slt", pitch=20)
    assert issubclass(TtsError, AvseError) and issubclass(VoiceMissingError, TtsError)


def test_espeak_table_maps_into_arpabet():
    assert set(tts.ESPEAK_TO_ARPABET.values()) <= ARPABET
    assert tts.espeak_to_arpabet("'eI") == "ey"  # stress marks (espeak-ng 1.52) are stripped
    assert tts.espeak_to_arpabet(",A@") == "aa"
    assert tts.espeak_to_arpabet("_:") == PAUSE and tts.espeak_to_arpabet("_!") == PAUSE
    assert tts.espeak_to_arpabet("t#") == "d"  # American flap
    assert tts.espeak_to_arpabet("aa", "en-us") == "ae"
    assert tts.espeak_to_arpabet("aa", "en-gb-x-rp") == "aa"
    with pytest.raises(TtsError):
        tts.espeak_to_arpabet("Q~9")


def test_festival_tables_map_into_phones():
    assert set(tts.RADIO_TO_ARPABET.values()) <= PHONES
    assert set(tts.MRPA_TO_ARPABET.values()) <= PHONES
    assert festival_to_arpabet("ax", "radio", "festival") == "ah"
    assert festival_to_arpabet("uh", "radio", "festival") == "uh"  # "book" in radio ...
    assert festival_to_arpabet("uh", "mrpa", "festival") == "ah"  # ... "but" in mrpa
    with pytest.raises(TtsError):
        festival_to_arpabet("zz", "radio", "flite")


def _tone_raw(sr: int, start: float, end: float, total: float, phones, words=()) -> Raw:
    t = np.arange(int(total * sr)) / sr
    x = np.zeros_like(t)
    on = (t >= start) & (t < end)
    x[on] = 0.3 * np.sin(2 * np.pi * 200 * t[on]) * np.hanning(on.sum())
    return Raw(audio=x.astype(np.float32), sample_rate=sr, phone_ends=list(phones), words=list(words))


def test_finalize_trims_and_pads_edges_exactly():
    # 1 s at 16 kHz: speech 0.5-0.9 s ("aa" then "m"), silence around it.
    raw = _tone_raw(16000, 0.5, 0.9, 1.0, [(PAUSE, 0.5), ("aa", 0.7), ("m", 0.9), (PAUSE, 1.0)], [("ma", 0.5, 0.9)])
    u = finalize(raw, "ma", Voice("flite", "slt"))
    # head cut at 0.5 - 0.15 = 0.35 s; tail needs 0.9 + 0.15 = 1.05 s, so 0.05 s of zeros are added
    assert u.audio.shape == (11200,)
    assert u.phones == [(PAUSE, 0.0, 0.15), ("aa", 0.15, 0.35), ("m", 0.35, 0.55), (PAUSE, 0.55, 0.7)]
    assert u.words == [("ma", 0.15, 0.55)]
    np.testing.assert_array_equal(u.audio[-800:], 0.0)
    src = raw.audio[5600:16000]
    np.testing.assert_allclose(u.audio[:10400], src * (PEAK / np.abs(src).max()), rtol=1e-6)
    assert np.isclose(np.abs(u.audio).max(), PEAK)


def test_finalize_pads_short_leading_silence():
    raw = _tone_raw(16000, 0.05, 0.45, 0.5, [(PAUSE, 0.05), ("iy", 0.45)])
    u = finalize(raw, "e", Voice("flite", "slt"))
    assert u.phones[0] == (PAUSE, 0.0, KEEP_SILENCE_S)
    assert u.phones[1] == ("iy", KEEP_SILENCE_S, KEEP_SILENCE_S + 0.4)
    assert u.phones[-1][2] == u.audio.shape[0] / SAMPLE_RATE
    np.testing.assert_array_equal(u.audio[: int(0.1 * SAMPLE_RATE)], 0.0)


def test_finalize_resamples_and_keeps_phones_contiguous():
    raw = _tone_raw(22050, 0.3, 0.8, 1.2, [(PAUSE, 0.3), ("s", 0.4), (PAUSE, 0.45), ("ow", 0.8), ("ow", 0.8)])
    u = finalize(raw, "so", Voice("espeak", "en-us"))
    assert u.audio.dtype == np.float32 and u.audio.ndim == 1
    assert u.phones[0][1] == 0.0 and u.phones[-1][2] == u.audio.shape[0] / SAMPLE_RATE
    assert all(a[2] == b[1] for a, b in zip(u.phones, u.phones[1:]))
    assert all(e > s for _, s, e in u.phones)  # the empty second "ow" is dropped
    assert [p for p, _, _ in u.phones] == [PAUSE, "s", PAUSE, "ow", PAUSE]


def test_finalize_rejects_silence():
    raw = Raw(np.zeros(1600, np.float32), 16000, [("aa", 0.1)], [])
    with pytest.raises(TtsError):
        finalize(raw, "a", Voice("flite", "slt"))


def test_words_from_phone_groups():
    spans = [(PAUSE, 0.0, 0.1), ("b", 0.1, 0.2), ("iy", 0.2, 0.4), (PAUSE, 0.4, 0.5), ("s", 0.5, 0.6)]
    assert _words_from_phone_groups(["bee", "s"], [["b", "iy"], ["s"]], spans) == [
        ("bee", 0.1, 0.4),
        ("s", 0.5, 0.6),
    ]
    assert _words_from_phone_groups(["bee"], [["b", "iy"], ["s"]], spans) == []  # counts disagree


def test_missing_binaries_raise_engine_missing(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(EngineMissingError, match="flite"):
        synthesize("hello", Voice("flite", "slt"))
    with pytest.raises(EngineMissingError, match="festival"):
        synthesize("hello", Voice("festival", "kal_diphone"))


def test_empty_text_raises():
    with pytest.raises(TtsError):
        synthesize("  \n ", Voice("flite", "slt"))


# ---------------------------------------------------------------------------
# Each installed engine
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_engine_audio_and_phone_contract(engine, utterances):
    _need(engine)
    for text, u in zip(SENTENCES, utterances[engine]):
        assert u.sample_rate == SAMPLE_RATE and u.text == text
        assert u.audio.dtype == np.float32 and u.audio.ndim == 1
        assert np.isclose(np.abs(u.audio).max(), PEAK, atol=1e-6)
        assert 0.8 < u.duration < 6.0
        # phones: contiguous, cover the audio, ARPAbet or pau, edges are KEEP_SILENCE_S of pause
        assert u.phones[0][1] == 0.0
        assert u.phones[-1][2] == u.audio.shape[0] / SAMPLE_RATE
        assert all(a[2] == b[1] for a, b in zip(u.phones, u.phones[1:]))
        assert all(e > s for _, s, e in u.phones)
        assert {p for p, _, _ in u.phones} <= PHONES
        assert u.phones[0][0] == PAUSE and u.phones[-1][0] == PAUSE
        assert u.phones[0][2] == pytest.approx(KEEP_SILENCE_S)
        assert 0.1 <= u.phones[-1][2] - u.phones[-1][1] < 0.3
        assert sum(p in VOWELS for p, _, _ in u.phones) >= 5
        assert not any(a[0] == b[0] == PAUSE for a, b in zip(u.phones, u.phones[1:]))


@pytest.mark.parametrize("engine", ENGINES)
def test_engine_words(engine, utterances):
    _need(engine)
    for text, u in zip(SENTENCES, utterances[engine]):
        assert [w.lower() for w, _, _ in u.words] == text.lower().split()
        assert all(0.0 <= s < e <= u.duration for _, s, e in u.words)
        assert all(a[2] <= b[1] + 1e-9 for a, b in zip(u.words, u.words[1:]))
        boundaries = {round(s, 6) for _, s, _ in u.phones} | {round(u.duration, 6)}
        assert all(round(s, 6) in boundaries and round(e, 6) in boundaries for _, s, e in u.words)


@pytest.mark.parametrize("engine", ENGINES)
def test_engine_vowels_loud_pauses_quiet(engine, utterances):
    _need(engine)
    vowel_db, pause_db = [], []
    for u in utterances[engine]:
        db = _frame_db(u.audio)
        labels = _frame_labels(u, db.shape[0])
        vowel_db += [d for d, p in zip(db, labels) if p in VOWELS]
        pause_db += [d for d, p in zip(db, labels) if p == PAUSE]
    vowel_db, pause_db = np.array(vowel_db), np.array(pause_db)
    assert np.median(vowel_db) > -15.0
    assert np.median(pause_db) < -35.0
    assert np.mean(vowel_db > -30.0) > 0.95
    assert np.mean(pause_db < -30.0) > 0.9


@pytest.mark.parametrize("engine", ENGINES)
def test_engine_labels_line_up_with_energy(engine, utterances):
    """The shift of the labels that best explains the energy contour is within 20 ms."""
    _need(engine)
    shifts = np.arange(-40, 41, 5) / 1000.0
    score = np.zeros(shifts.shape)
    for u in utterances[engine]:
        hop = 16  # 1 ms
        db = np.maximum(_frame_db(u.audio, hop), -60.0)
        t = (np.arange(db.shape[0]) + 0.5) * hop / SAMPLE_RATE
        for i, d in enumerate(shifts):
            lab = np.zeros_like(db)
            for p, s, e in u.phones:
                sel = (t >= s + d) & (t < e + d)
                lab[sel] = 1.0 if p in VOWELS else (-1.0 if p == PAUSE else 0.0)
            score[i] += np.corrcoef(db, lab)[0, 1]
    assert abs(shifts[np.argmax(score)]) <= 0.02


@pytest.mark.parametrize("engine", ["flite", "festival"])
def test_subprocess_engines_repeat_exactly(engine, utterances):
    _need(engine)
    again = synthesize(SENTENCES[0], ENGINE_VOICE[engine])
    first = utterances[engine][0]
    np.testing.assert_array_equal(again.audio, first.audio)
    assert again.phones == first.phones and again.words == first.words


def test_espeak_repeats_exactly_whatever_came_before(utterances):
    """espeak-ng keeps state between calls; loading it afresh per call makes the output independent of history."""
    _need("espeak")
    synthesize(SENTENCES[2], Voice("espeak", "en-gb-x-rp", "m2", pitch=3, rate=1.3))  # something else first
    again = synthesize(SENTENCES[0], ENGINE_VOICE["espeak"])
    first = utterances["espeak"][0]
    np.testing.assert_array_equal(again.audio, first.audio)
    assert again.phones == first.phones and again.words == first.words


def test_espeak_word_text():
    text = "bin blue at U eight please. lay green"
    assert _espeak_word_text(text, 1, 3) == "bin"
    assert _espeak_word_text(text, 21, 6) == "please"
    # after "please." and a lowercase word espeak points at the space before it, with length 1
    assert _espeak_word_text(text, 28, 1) == "lay"
    assert _espeak_word_text(text, 38, 0) == ""  # end-of-text event


@pytest.mark.parametrize("engine", ENGINES)
def test_pitch_and_rate_change_the_speech(engine):
    _need(engine)
    base = ENGINE_VOICE[engine]
    text = SENTENCES[2]
    slow = synthesize(text, Voice(base.engine, base.name, base.variant, rate=0.8))
    fast = synthesize(text, Voice(base.engine, base.name, base.variant, rate=1.25))
    speech = lambda u: u.duration - 2 * KEEP_SILENCE_S  # noqa: E731
    assert speech(slow) / speech(fast) == pytest.approx(1.25 / 0.8, rel=0.2)
    low = synthesize(text, Voice(base.engine, base.name, base.variant, pitch=-4))
    high = synthesize(text, Voice(base.engine, base.name, base.variant, pitch=4))
    assert 12 * np.log2(_median_f0(high.audio) / _median_f0(low.audio)) == pytest.approx(8.0, abs=2.0)


def test_missing_voices_raise():
    engines = available_engines()
    if "espeak" in engines:
        with pytest.raises(VoiceMissingError):
            synthesize("hello", Voice("espeak", "en-us", "no_such_variant"))
        with pytest.raises(VoiceMissingError):
            synthesize("hello", Voice("espeak", "xx-no-such-language"))
    if "flite" in engines:
        with pytest.raises(VoiceMissingError):
            synthesize("hello", Voice("flite", "no_such_voice"))
        with pytest.raises(ConfigError):
            synthesize("hello", Voice("flite", "rms", pitch=2))  # rms ignores pitch requests
    if "festival" in engines:
        with pytest.raises(VoiceMissingError):
            synthesize("hello", Voice("festival", "no_such_voice"))
        with pytest.raises(ConfigError):
            synthesize("hello", Voice("festival", "cmu_us_slt_arctic_hts", pitch=2))
    if not engines:
        pytest.skip("no TTS engine installed")


def _espeak_phones(text: str) -> tuple[list, str]:
    u = synthesize(text, ENGINE_VOICE["espeak"])
    return u.phones, u.audio.tobytes().hex()[:2000] + str(float(np.abs(u.audio).sum()))


def test_espeak_works_in_forked_workers():
    _need("espeak")
    parent = _espeak_phones(SENTENCES[0])  # initialise in the parent first
    with mp.get_context("fork").Pool(2) as pool:
        children = pool.map(_espeak_phones, [SENTENCES[0]] * 2)
    assert children == [parent, parent]


def test_espeak_works_in_spawned_workers():
    _need("espeak")
    parent = _espeak_phones(SENTENCES[1])
    with mp.get_context("spawn").Pool(1) as pool:
        assert pool.map(_espeak_phones, [SENTENCES[1]]) == [parent]


# ---------------------------------------------------------------------------
# Speaker identities
# ---------------------------------------------------------------------------


def test_speaker_voices_distinct_deterministic_and_spread():
    engines = available_engines()
    if not engines:
        pytest.skip("no TTS engine installed")
    voices = speaker_voices(24, seed=3)
    assert len(voices) == 24 and len({v.id for v in voices}) == 24
    assert voices == speaker_voices(24, seed=3)
    assert voices != speaker_voices(24, seed=4)
    assert {v.engine for v in voices} == set(engines)
    sexes = {catalog_entry(v).sex for v in voices}
    assert sexes == {"male", "female"}
    many = speaker_voices(300, seed=0)
    assert len({v.id for v in many}) == 300
    assert speaker_voices(0) == []
    with pytest.raises(ConfigError):
        speaker_voices(-1)


def test_speaker_voices_respect_pitch_control():
    if not available_engines():
        pytest.skip("no TTS engine installed")
    for v in speaker_voices(100, seed=1):
        info = catalog_entry(v)
        assert info is not None
        if not info.pitch_control:
            assert v.pitch == 0.0
        assert -12 <= v.pitch <= 12 and 0.5 <= v.rate <= 2.0


def test_speaker_voices_restricted_to_engines():
    engines = available_engines()
    if not engines:
        pytest.skip("no TTS engine installed")
    only = engines[-1]
    assert {v.engine for v in speaker_voices(10, seed=0, engines=[only])} == {only}


def test_catalog_is_available_here():
    """Every catalogued voice of an installed engine is there (documents what this machine has)."""
    engines = available_engines()
    if not engines:
        pytest.skip("no TTS engine installed")
    have = {(v.engine, v.name, v.variant) for v in tts.available_voices()}
    for info in tts.VOICE_CATALOG:
        if info.engine in engines:
            assert (info.engine, info.name, info.variant) in have
