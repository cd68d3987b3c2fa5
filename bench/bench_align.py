"""Alignment error of avse.data.align where the truth is known: other TTS voices, and real GRID lips.

1. TTS truth. Sentences of the corpus text generator (avse.data.text, half GRID
   grammar, half free sentences) are spoken by a voice whose phone times are
   known (flite, festival, and espeak-ng voices other than the aligner's own:
   British English, other variants and rates); the aligner aligns that audio
   with its own espeak-ng en-us rendition, and the aligned phone boundaries are
   compared with the voice's (speech phones matched by edit distance, pauses
   left out: avse.data.align.boundary_errors), words too where both list the
   same words. Two conditions: clean, and "room" (a synthetic room response,
   RT60 0.4 s with as much reverberant as direct energy, plus pink noise at 20 dB SNR). A baseline without DTW (the
   rendition's phones stretched linearly onto the recording's speech span)
   shows what the warping adds. The espeak-ng voices share the aligner's
   phone inventory and rules, so "other engines" (flite + festival) is the
   honest figure for a voice the aligner has never heard.
2. Real speech (GRID, ../shared/data/real/grid, skipped when absent): no phone
   truth exists for these clips, so the check is indirect: the mouth opening
   predicted from the aligned phones (avse.data.visemes.lip_trajectory) against
   the real talker's mouth opening (MediaPipe face mesh through the front end):
   Pearson correlation at lag 0 and the lag (frames of 40 ms) that maximises
   it, for the aligned phones, the linear baseline, and a wrong transcript (a
   free sentence of six words that was not said).
3. Recognised phones (avse.data.recognise, PocketSphinx's phone decoder, no
   transcript; skipped when PocketSphinx is not installed): the same lips
   measures, so the lips drawn for an untranscribed recording can be set
   against those of an aligned one. With TTS truth: Pearson r between the lip
   trajectory (every articulatory parameter, 25 fps) drawn from the true
   phones and from the aligned or recognised ones, and the share of frames
   whose viseme class is the true one; on GRID, "recognised" joins the rows.
4. Other languages heard as English (``avse import-speech --recognise all``):
   on real Czech and Dutch fillets-ng lines of an import (``--real-speech``,
   skipped when absent), the lips drawn from the English model's phones against
   those drawn from the transcript-aligned phones (the same r and viseme
   share), and, as a floor, another line's aligned phones cut to the length;
   the same on the real English GRID clips, like for like.

    python bench/bench_align.py [--sentences 120] [--seed 0] [--real-speech data/real_more_rec] [--lines 60]
                                [--landmarks-cache DIR]

Prints everything, writes bench/results/align.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save  # noqa: E402

from avse import SAMPLE_RATE, VIDEO_FPS  # noqa: E402
from avse.data.align import (  # noqa: E402
    align,
    boundary_errors,
    speech_span,
    word_boundary_errors,
)
from avse.data.recognise import available as recognition_available  # noqa: E402
from avse.data.recognise import recognise_phones  # noqa: E402
from avse.data.text import free_sentence, grid_sentence  # noqa: E402
from avse.data.tts import PAUSE, Voice, available_engines, synthesize  # noqa: E402

GRID = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "grid"
ALIGNER_LANGUAGE = "en-us"
# Voices with known phone times, none of them the aligner's own (espeak-ng en-us, default voice, rate 1).
TRUTH_VOICES = (
    Voice("flite", "slt"),
    Voice("flite", "kal16"),
    Voice("flite", "awb"),
    Voice("flite", "rms", rate=1.1),
    Voice("festival", "kal_diphone"),
    Voice("festival", "ked_diphone", rate=0.9),
    Voice("festival", "cmu_us_slt_arctic_hts"),
    Voice("espeak", "en-gb-x-rp", "m3", rate=0.9),
    Voice("espeak", "en-us", "f3", pitch=3.0, rate=1.15),
    Voice("espeak", "en-gb-x-rp", "f4", rate=1.25),
)
# GRID sentence of a file name: command colour preposition letter digit adverb
_GRID_WORDS = [
    {"b": "bin", "l": "lay", "p": "place", "s": "set"},
    {"b": "blue", "g": "green", "r": "red", "w": "white"},
    {"a": "at", "b": "by", "i": "in", "w": "with"},
    None,  # the letter itself
    {"z": "zero", "1": "one", "2": "two", "3": "three", "4": "four", "5": "five", "6": "six", "7": "seven", "8": "eight", "9": "nine"},
    {"a": "again", "n": "now", "p": "please", "s": "soon"},
]


def room(audio: np.ndarray, rng: np.random.Generator, rt60: float = 0.4, drr_db: float = 0.0, snr_db: float = 20.0) -> np.ndarray:
    """``audio`` [T] in a synthetic room (a direct path, then decaying noise: RT60 ``rt60``, direct-to-reverberant ratio ``drr_db``) plus pink noise."""
    from scipy.signal import fftconvolve

    n = int(rt60 * SAMPLE_RATE)
    t = np.arange(1, n) / SAMPLE_RATE
    tail = rng.standard_normal(n - 1) * np.exp(-6.9 * t / rt60)
    tail *= 10 ** (-drr_db / 20) / np.sqrt(np.sum(tail**2))
    rir = np.concatenate([[1.0], tail])
    wet = fftconvolve(audio, rir)[: len(audio)]
    spec = np.fft.rfft(rng.standard_normal(len(audio)))
    spec /= np.sqrt(np.maximum(np.arange(len(spec)), 1))
    pink = np.fft.irfft(spec, len(audio))
    pink *= np.sqrt(np.mean(wet**2) / np.mean(pink**2)) * 10 ** (-snr_db / 20)
    out = wet + pink
    return (out * (0.9 / np.max(np.abs(out)))).astype(np.float32)


def linear_phones(audio: np.ndarray, text: str) -> list[tuple[str, float, float]]:
    """Baseline without DTW: the espeak-ng rendition's phones stretched linearly onto the recording's speech span."""
    ren = synthesize(text, Voice("espeak", ALIGNER_LANGUAGE))
    speech = [(s, e) for p, s, e in ren.phones if p != PAUSE]
    r0, r1 = speech[0][0], speech[-1][1]
    span = speech_span(audio)
    a0, a1 = span if span is not None else (0.0, len(audio) / SAMPLE_RATE)
    scale = (a1 - a0) / (r1 - r0)
    dur = len(audio) / SAMPLE_RATE
    out = [(p, float(np.clip(a0 + (s - r0) * scale, 0, dur)), float(np.clip(a0 + (e - r0) * scale, 0, dur))) for p, s, e in ren.phones]
    return [(p, s, e) for p, s, e in out if e > s]


def _stats(x: list[float] | np.ndarray) -> dict:
    a = np.asarray(x, dtype=np.float64) * 1000.0
    if a.size == 0:
        return {"n": 0}
    return {
        "n": int(a.size),
        "median_ms": round(float(np.median(a)), 1),
        "p90_ms": round(float(np.percentile(a, 90)), 1),
        "mean_ms": round(float(a.mean()), 1),
        "share_within_20ms": round(float(np.mean(a <= 20.0)), 3),
        "share_within_40ms": round(float(np.mean(a <= 40.0)), 3),
    }


def _viseme_frames(phones: list[tuple[str, float, float]], n: int) -> np.ndarray:
    """The viseme class at each of ``n`` frame centres (25 fps) -> [n] str."""
    from avse.data.visemes import phone_to_viseme

    centres = (np.arange(n) + 0.5) / VIDEO_FPS
    starts = np.array([s for _, s, _ in phones])
    idx = np.clip(np.searchsorted(starts, centres, side="right") - 1, 0, len(phones) - 1)
    return np.array([phone_to_viseme(phones[i][0]) for i in idx])


def lips_agreement(
    truth: list[tuple[str, float, float]], other: list[tuple[str, float, float]], duration: float
) -> tuple[float, float]:
    """How close the lips drawn from ``other`` phones come to those of ``truth``: (mean Pearson r over the
    articulatory parameters that move, share of frames with the true viseme class)."""
    from avse.data.visemes import lip_trajectory

    n = int(duration * VIDEO_FPS)
    a, b = lip_trajectory(truth, n), lip_trajectory(other, n)  # [n, K]
    rs = [np.corrcoef(a[:, k], b[:, k])[0, 1] for k in range(a.shape[1]) if a[:, k].std() > 1e-6 and b[:, k].std() > 1e-6]
    return float(np.mean(rs)) if rs else 0.0, float(np.mean(_viseme_frames(truth, n) == _viseme_frames(other, n)))


def tts_truth(n_sentences: int, seed: int) -> dict:
    """Phone and word boundary errors per voice group and condition (clean, room), aligner and linear baseline."""
    engines = set(available_engines())
    voices = [v for v in TRUTH_VOICES if v.engine in engines]
    rng = np.random.default_rng(seed)
    groups = {"flite": "other engines", "festival": "other engines", "espeak": "espeak-ng, other voices"}
    acc: dict[tuple[str, str, str, str], list[float]] = {}
    costs: list[float] = []
    t_align = 0.0
    t_recog = 0.0
    recognise = recognition_available()
    lips: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
    for k in range(n_sentences):
        voice = voices[k % len(voices)]
        text = grid_sentence(rng) if (k // len(voices)) % 2 else free_sentence(rng)  # every voice speaks both kinds
        utt = synthesize(text, voice)
        for cond in ("clean", "room"):
            audio = utt.audio if cond == "clean" else room(utt.audio, np.random.default_rng(seed * 1000 + k))
            t0 = time.perf_counter()
            res = align(audio, text, ALIGNER_LANGUAGE)
            t_align += time.perf_counter() - t0
            costs.append(res.cost)
            lin = linear_phones(audio, text)
            methods = {"aligned": res.phones, "linear": lin}
            if recognise:
                t0 = time.perf_counter()
                methods["recognised"] = recognise_phones(audio)
                t_recog += time.perf_counter() - t0
            for method, phones in methods.items():
                agree = lips_agreement(utt.phones, phones, utt.duration)
                for grp in (groups[voice.engine], "all"):
                    lips.setdefault((cond, grp, method), []).append(agree)
            for grp in (groups[voice.engine], "all", voice.id.split("-p")[0]):
                acc.setdefault((cond, grp, "phones", "dtw"), []).extend(boundary_errors(utt.phones, res.phones))
                acc.setdefault((cond, grp, "phones", "linear"), []).extend(boundary_errors(utt.phones, lin))
                acc.setdefault((cond, grp, "words", "dtw"), []).extend(word_boundary_errors(utt.words, res.words))
        if (k + 1) % 20 == 0:
            print(f"  {k + 1}/{n_sentences} sentences", flush=True)
    out: dict = {"sentences": n_sentences, "voices": [v.id for v in voices], "aligner": f"espeak-ng {ALIGNER_LANGUAGE}"}
    for (cond, grp, what, method), errs in sorted(acc.items()):
        out.setdefault(cond, {}).setdefault(grp, {})[f"{what}_{method}"] = _stats(errs)
    out["seconds_per_alignment"] = round(t_align / (2 * n_sentences), 3)
    out["lips"] = {}
    for (cond, grp, method), vals in sorted(lips.items()):
        arr = np.array(vals)
        out["lips"].setdefault(cond, {}).setdefault(grp, {})[method] = {
            "r_mean": round(float(arr[:, 0].mean()), 3),
            "viseme_frames": round(float(arr[:, 1].mean()), 3),
        }
    if recognise:
        out["seconds_per_recognition"] = round(t_recog / (2 * n_sentences), 3)
    out["cost_median"] = round(float(np.median(costs)), 2)
    print(f"\n== phone boundary error (ms), aligner: espeak-ng {ALIGNER_LANGUAGE}; median / p90 (n)")
    for cond in ("clean", "room"):
        for grp in ("other engines", "espeak-ng, other voices", "all"):
            row = out[cond].get(grp)
            if not row:
                continue
            d, lin, w = row["phones_dtw"], row["phones_linear"], row["words_dtw"]
            words = f"{w['median_ms']:6.1f} / {w['p90_ms']:6.1f} ({w['n']})" if w["n"] else "n/a"
            print(f"  {cond:<6} {grp:<25} DTW {d['median_ms']:6.1f} / {d['p90_ms']:6.1f} ({d['n']})"
                  f"   linear {lin['median_ms']:6.1f} / {lin['p90_ms']:6.1f}   words {words}")
    print(
        "\n== lips drawn from the phones against those of the true phones: mean r over parameters / share of frames with the true viseme"
    )
    for cond in ("clean", "room"):
        for grp in ("other engines", "espeak-ng, other voices", "all"):
            row = out["lips"].get(cond, {}).get(grp)
            if row:
                print(
                    f"  {cond:<6} {grp:<25} "
                    + "   ".join(f"{m} {v['r_mean']:.3f} / {v['viseme_frames']:.3f}" for m, v in row.items())
                )
    return out


def grid_sentence_of(name: str) -> str | None:
    """The GRID sentence a file name spells ("bbaf2n" -> "bin blue at f two now"); None if it is not one."""
    if len(name) != 6:
        return None
    words = []
    for table, ch in zip(_GRID_WORDS, name):
        if table is None:
            words.append(ch)
        elif ch in table:
            words.append(table[ch])
        else:
            return None
    return " ".join(words)


def _corr_lag(a: np.ndarray, b: np.ndarray, max_lag: int = 5) -> tuple[float, int]:
    from avse.video.sync import lagged_correlation

    corr = lagged_correlation(a, b, max_lag)
    return float(corr[max_lag]), int(np.nanargmax(corr)) - max_lag


def grid_lips(cache: Path) -> dict:
    """Predicted vs real mouth opening on the GRID clips: aligned, linear baseline, wrong transcript.

    ``cache``: the clips' landmarks, shared with the other real-clip benches (bench_sync_expert.clip_landmarks).
    """
    from bench_sync_expert import clip_landmarks

    from avse.data.visemes import OPEN, lip_trajectory
    from avse.video.landmarks import mouth_opening
    from avse.video.shift import timeline_audio

    clips = sorted(GRID.glob("*.mpg")) if GRID.is_dir() else []
    if not clips:
        print("\n== GRID: no clips found, skipped")
        return {"skipped": f"no clips in {GRID}"}
    print("\n== GRID (real talkers): predicted vs real mouth opening, Pearson r at lag 0 (best lag, frames of 40 ms)")
    texts = {c.stem: grid_sentence_of(c.stem) for c in clips}
    rows: dict = {}
    rng = np.random.default_rng(0)
    methods = ["aligned", "linear", "wrong_transcript"] + (["recognised"] if recognition_available() else [])
    for clip in clips:
        text = texts[clip.stem]
        if text is None:
            continue
        audio = timeline_audio(clip)
        lm = clip_landmarks(clip, audio, cache)
        real = mouth_opening(lm["lips"])  # [N]
        n = len(real)
        wrong = " ".join(free_sentence(rng).split()[:6])  # a sentence of the same length that was not said
        row = {"text": text}
        candidates = [
            ("aligned", align(audio, text, ALIGNER_LANGUAGE).phones),
            ("linear", linear_phones(audio, text)),
            ("wrong_transcript", align(audio, wrong, ALIGNER_LANGUAGE).phones),
        ]
        if recognition_available():
            candidates.append(("recognised", recognise_phones(audio)))
        for method, phones in candidates:
            pred = lip_trajectory(phones, n, fps=VIDEO_FPS)[:, OPEN]
            r, lag = _corr_lag(pred, real)
            row[method] = {"r": round(r, 3), "best_lag": lag}
        rows[clip.stem] = row
        print(f"  {clip.stem} {text!r:<28} " + "  ".join(f"{m} {row[m]['r']:+.2f} ({row[m]['best_lag']:+d})" for m in methods))
    mean = {m: round(float(np.mean([r[m]["r"] for r in rows.values()])), 3) for m in methods}
    print("  mean r: " + ", ".join(f"{m} {v:+.3f}" for m, v in mean.items()))
    return {"clips": rows, "mean_r": mean}


def _recognised_against_aligned(cases: list[tuple[list[tuple[str, float, float]], np.ndarray]]) -> dict:
    """Lips from recognised phones against lips from aligned ones, per case (aligned phones, audio [T]); the floor is
    the next case's aligned phones cut or padded to the length."""
    rec, floor = [], []
    for k, (truth, audio) in enumerate(cases):
        dur = len(audio) / SAMPLE_RATE
        rec.append(lips_agreement(truth, recognise_phones(audio), dur))
        other = [(p, a, min(b, dur)) for p, a, b in cases[(k + 1) % len(cases)][0] if a < dur]
        if other[-1][2] < dur:
            other.append((PAUSE, other[-1][2], dur))
        floor.append(lips_agreement(truth, other, dur))
    out: dict = {"lines": len(cases)}
    for method, vals in (("recognised", rec), ("another_line", floor)):
        arr = np.array(vals)
        out[method] = {"r_mean": round(float(arr[:, 0].mean()), 3), "viseme_frames": round(float(arr[:, 1].mean()), 3)}
    return out


def foreign_lips(folder: Path, n_lines: int, seed: int = 0) -> dict:
    """Lips from English-model phones on aligned Czech and Dutch lines of the import in ``folder`` against their
    aligned lips (mean r over the lip parameters, share of frames with the aligned viseme); the same on the real
    English GRID clips (aligned to their known sentences), like for like."""
    from avse.audio.io import load_audio
    from avse.data.realspeech import LIST_NAME, load_real_speech
    from avse.video.shift import timeline_audio

    if not (folder / LIST_NAME).is_file() or not recognition_available():
        why = f"no import at {folder}" if recognition_available() else "PocketSphinx is not installed"
        print(f"\n== other languages heard as English: skipped ({why})")
        return {"skipped": why}
    entries = load_real_speech(folder)
    rng = np.random.default_rng(seed)
    print(f"\n== other languages heard as English: lips from recognised vs aligned phones, mean r over the lip "
          f"parameters (share of frames with the aligned viseme); {n_lines} aligned lines per language of {folder}")
    sets: dict[str, list[tuple[list[tuple[str, float, float]], np.ndarray]]] = {}
    for lang in ("cs", "nl"):
        lines = [e for e in entries if e["language"] == lang and e["phones"] and e.get("phones_from") is None
                 and e["duration"] < 6.0]
        pick = [lines[int(i)] for i in rng.permutation(len(lines))[:n_lines]]
        sets[lang] = [([(str(p), float(a), float(b)) for p, a, b in e["phones"]], load_audio(folder / e["wavfile"], SAMPLE_RATE)[0])
                      for e in pick]
    grid = sorted(GRID.glob("*.mpg")) if GRID.is_dir() else []
    sets["en (GRID)"] = [(align(audio, text, ALIGNER_LANGUAGE).phones, audio)
                         for clip in grid if (text := grid_sentence_of(clip.stem)) is not None
                         for audio in [timeline_audio(clip)]]
    out: dict = {}
    for name, cases in sets.items():
        if len(cases) < 2:  # the floor needs another line
            continue
        out[name] = row = _recognised_against_aligned(cases)
        print(f"  {name}: recognised r {row['recognised']['r_mean']:.3f} ({row['recognised']['viseme_frames']:.3f}); "
              f"another line's phones r {row['another_line']['r_mean']:.3f} ({row['another_line']['viseme_frames']:.3f}); "
              f"{row['lines']} lines")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sentences", type=int, default=120)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--real-speech", type=Path, default=Path("data/real_more_rec"),
                   help="an avse import-speech folder with aligned Czech / Dutch fillets-ng lines (default: %(default)s)")
    p.add_argument("--lines", type=int, default=60, help="lines per language for the other-languages measure")
    p.add_argument("--landmarks-cache", type=Path, default=Path(tempfile.gettempdir()) / "avse_bench_sync_expert",
                   help="the real clips' landmarks, shared with bench_sync_expert.py and bench_real.py")
    args = p.parse_args()
    import torch

    torch.set_num_threads(1)
    print(f"== {args.sentences} sentences, voices with known phone times vs the espeak-ng {ALIGNER_LANGUAGE} aligner")
    result = {"tts_truth": tts_truth(args.sentences, args.seed), "grid_lips": grid_lips(args.landmarks_cache),
              "foreign_lips": foreign_lips(args.real_speech, args.lines, args.seed)}
    save("align", result)


if __name__ == "__main__":
    main()
