"""The speaker encoder on voices it never heard: does it tell one voice from two?

    python bench/bench_speaker.py [--model runs/speaker/best.avse.pt] [--real ../shared/data/real] [--name speaker]

Pairs of recordings scored by the cosine of their embeddings (``avse.models.speaker``), against the threshold
stored with the encoder (``avse.api.Separator.same_speaker_threshold``: the one ``Separator(speaker=...)`` uses):

- held-out voices: the recipe's validation speakers (every 6th of ``--speech`` and ``--corpus``), 3 s items drawn
  as in training (rooms, noise, some words silenced, a faint second voice), ``--per-speaker`` each, all pairs;
- the real dev set (../shared/data/real): each of the 23 clips cut in two halves (the same talker: its two halves
  form a pair) and every pair of halves from clips of different talkers;
- CMU ARCTIC (../shared/data/real/speech): 6 utterances of 2 speakers, all pairs.

Reports per set the equal error rate, how many same-voice pairs reach the threshold and how many pairs of two
voices do (the error that would cost a talker in a one-voice check), and the encoder's speed on one core.
With an encoder that keeps a turn threshold (``val.turn_threshold``, or ``avse.api.ONE_VOICE_TURN_THRESHOLD`` when
set: ``Separator.turn_threshold``), also ``voices_apart`` (``avse.models.speaker``:
``avse separate``'s check of the input itself) on recordings of one voice and of two taking turns: the held-out
voices' (the very recordings the encoder's validation set its threshold on, ``validation_recordings``: their
equal error rate and its threshold, and the two-voice ones that score highest, by name) and the dev clips (each alone; each followed by its
``bench_real.py`` partner's clip, ``bench_separate.py``'s turns), against that threshold ("turns" in the JSON).
Writes bench/results/NAME.json and NAME.png (the similarities, one dot per pair, and the threshold).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, save, seconds_per_second  # noqa: E402


def main() -> None:
    """Measure the encoder on every set there is (see the module docstring) and write the JSON and the plot."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="runs/speaker/best.avse.pt", help="an encoder checkpoint (none ships)")
    p.add_argument("--real", type=Path, default=Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real")
    p.add_argument("--work", type=Path, default=None, help="bench_real.py's work folder (its front-end cache is reused)")
    p.add_argument("--speech", default="data/real_speech", help="the recipe's voices (its validation speakers are used)")
    p.add_argument("--noise", default="data/real_noise", help="the recipe's noises")
    p.add_argument("--corpus", nargs="*", default=None, help="the recipe's corpora of TTS voices (default: the recipe's)")
    p.add_argument("--per-speaker", type=int, default=8)
    p.add_argument("--name", default="speaker")
    args = p.parse_args()

    from avse.api import Separator
    from avse.audio.io import load_audio
    from avse.models.speaker import SpeakerEncoder, voices_apart

    enc = SpeakerEncoder.from_pretrained(args.model)
    threshold = Separator.same_speaker_threshold(enc)
    # the threshold Separator(speaker=...) reads the input by (avse.api.ONE_VOICE_TURN_THRESHOLD or the encoder's);
    # None when it compares the two outputs instead (an encoder trained before the threshold was kept)
    turn_thr = Separator.turn_threshold(enc) if Separator.speaker_rule(enc) == "input" else None
    sets: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # name -> (similarities [P], same voice [P])
    turn_sets: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # name -> (voices_apart [R], one voice [R])
    result_notes: dict = {}

    def pairs(emb: np.ndarray, who: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        iu = np.triu_indices(len(who), 1)
        return (emb @ emb.T)[iu], (who[:, None] == who[None, :])[iu]

    if Path(args.speech).is_dir():
        from avse.training.overlap import VoicePool, noise_pool
        from avse.training.speaker import Recipe, SpeakerItems

        given = {"speech": [args.speech], "noise": [args.noise]} | ({} if args.corpus is None else {"corpus": args.corpus})
        rec = Recipe.from_mapping(dict(enc.extra.get("recipe", {})) | given)
        voices = VoicePool(rec.speech, corpora=rec.corpus, mbrola=rec.mbrola)
        _, val_spk = voices.split(rec.val_every)
        noises = noise_pool(rec.noise) if Path(args.noise).is_dir() else []
        items = SpeakerItems(rec, voices, val_spk, noises[:: rec.val_every])
        rng = np.random.default_rng([rec.seed, 4242])
        who = np.repeat(np.arange(len(val_spk)), args.per_speaker)
        emb = np.stack([enc.embed(items.make(val_spk[int(i)], rng)) for i in who])
        sets["held-out voices (3 s, as in training)"] = pairs(emb, who)
        synthetic = {Path(c).name for c in rec.corpus} | {"mbrola"}  # corpora's voices and MBROLA's are TTS
        real = np.array([s.split(":")[0] not in synthetic for s in val_spk])[who]
        iu = np.triu_indices(len(who), 1)
        both_real = (real[:, None] & real[None, :])[iu]
        sim, same = sets["held-out voices (3 s, as in training)"]
        sets["held-out real voices"] = (sim[both_real], same[both_real])
        if turn_thr is not None:  # the very recordings the encoder's validation set its turn threshold on
            from avse.training.speaker import turn_scores, validation_recordings

            flags, values, named = [], [], []
            for first, second, x in validation_recordings(items, val_spk, rec.val_turns, rec.seed):
                v = voices_apart(enc, x)
                if v is not None:
                    flags.append(first == second)
                    values.append(v)
                    if first != second:
                        named.append((v, first, second))
            apart, one = np.array(values, dtype=float), np.array(flags, dtype=bool)
            turn_sets["held-out voices: the encoder's validation recordings (6 s)"] = (apart, one)
            # its own threshold again (a check that these are its recordings), its equal error point, and the
            # two-voice recordings that score highest: those that set the threshold
            result_notes["validation turn scores"] = turn_scores(apart[one], apart[~one], float(rec.far))
            result_notes["validation two-voice recordings, highest"] = [
                {"voices_apart": round(v, 4), "first": a, "second": b} for v, a, b in sorted(named, reverse=True)[:6]]
    else:
        print(f"held-out voices: skipped ({args.speech} is absent)", flush=True)
    if args.real.is_dir():
        from bench_real import load_clips

        work = args.work or Path(tempfile.gettempdir()) / "avse_bench_real"
        clips = load_clips(args.real, work / "frontend")
        halves, who_l = [], []
        for c in clips:
            h = len(c.audio) // 2
            halves += [c.audio[:h], c.audio[h:]]
            who_l += [c.talker, c.talker]
        emb = np.stack([enc.embed(x) for x in halves])
        sim, same = pairs(emb, np.array(who_l))
        # only a clip's own two halves count as a same-voice pair (a talker's other clips may be another session)
        idx = np.triu_indices(len(halves), 1)
        own = (idx[0] // 2 == idx[1] // 2)
        keep = own | ~same
        sets["real dev clips (halves)"] = (sim[keep], own[keep])
        if turn_thr is not None:  # each clip alone, and each clip then its bench_real.py partner's (bench_separate.py's turns)
            from bench_real import partners, turn_audio

            pair = partners(clips)
            ones = [voices_apart(enc, c.audio) for c in clips]
            twos = [voices_apart(enc, turn_audio(c.audio, clips[pair[i]].audio)[0]) for i, c in enumerate(clips)]
            kept = [(v, True) for v in ones if v is not None] + [(v, False) for v in twos if v is not None]
            turn_sets["real dev clips: one clip / two clips taking turns"] = (np.array([v for v, _ in kept], dtype=float),
                                                                               np.array([f for _, f in kept], dtype=bool))
            result_notes["real dev clips too short for two pieces"] = sum(v is None for v in ones)
        arctic = sorted((args.real / "speech").glob("cmu_arctic_*.wav"))
        if arctic:
            emb = np.stack([enc.embed(load_audio(q, 16000)[0]) for q in arctic])
            sets["CMU ARCTIC"] = pairs(emb, np.array([q.name.split("_")[3] for q in arctic]))
    else:
        print(f"real clips: skipped ({args.real} is absent)", flush=True)

    result: dict = {"model": args.model, "threshold": threshold, "sets": {},
                    "real_time_factor_one_core": speed(enc)}
    for name, (sim, same) in sets.items():
        pos, neg = sim[same], sim[~same]
        result["sets"][name] = {
            "same_pairs": int(len(pos)), "different_pairs": int(len(neg)),
            "eer": eer(pos, neg),
            "same_at_or_above_threshold": float(np.mean(pos >= threshold)) if len(pos) else None,
            "different_at_or_above_threshold": float(np.mean(neg >= threshold)) if len(neg) else None,
            "same_median": float(np.median(pos)) if len(pos) else None,
            "different_median": float(np.median(neg)) if len(neg) else None,
            "different_p99": float(np.percentile(neg, 99)) if len(neg) else None,
        }
    result["turn_threshold"], result["turns"] = turn_thr, {}
    for name, (apart, one) in turn_sets.items():
        pos, neg = apart[one], apart[~one]
        result["turns"][name] = {
            "one_voice": int(len(pos)), "two_voices": int(len(neg)), "eer": eer(pos, neg),
            "one_voice_at_or_above_threshold": float(np.mean(pos >= turn_thr)) if len(pos) else None,
            "two_voices_at_or_above_threshold": float(np.mean(neg >= turn_thr)) if len(neg) else None,
            "one_voice_values": np.round(np.sort(pos), 3).tolist(), "two_voices_values": np.round(np.sort(neg), 3).tolist()}
    result.update(result_notes)
    save(args.name, result)
    plot(result, sets, RESULTS / f"{args.name}.png", turn_sets)


def eer(pos: np.ndarray, neg: np.ndarray) -> float | None:
    """The equal error rate of same-voice similarities ``pos`` against different-voice ones ``neg``."""
    from avse.training.speaker import equal_error

    return equal_error(pos, neg)[0] if len(pos) and len(neg) else None


def speed(enc) -> float:
    """Seconds the encoder takes per second of audio on one core (60 s of noise, best of 3)."""
    return seconds_per_second(enc.embed)


def plot(result: dict, sets: dict, path: Path, turn_sets: dict | None = None) -> None:
    """One row per set: each pair's similarity, the same voice in blue and two voices in red, and the threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(sets)
    turn_sets = turn_sets or {}
    rows = [len(names)] + ([len(turn_sets)] if turn_sets else [])
    fig, axes = plt.subplots(len(rows), 1, figsize=(10.5, 0.7 * sum(rows) + 1.4 * len(rows)), height_ratios=rows, squeeze=False)
    ax = axes[0, 0]
    rng = np.random.default_rng(0)
    for i, name in enumerate(names):
        sim, same = sets[name]
        for flag, colour, dy in ((False, "tab:red", 0.12), (True, "tab:blue", -0.12)):
            v = sim[same == flag]
            if len(v) > 600:
                v = rng.choice(v, 600, replace=False)
            ax.scatter(v, i + dy + rng.uniform(-0.08, 0.08, len(v)), s=6, alpha=0.5, color=colour)
    ax.axvline(result["threshold"], color="k", lw=1, ls="--")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("cosine similarity of the two recordings' speaker embeddings")
    ax.invert_yaxis()
    ax.set_title("speaker encoder: same voice (blue), two voices (red)\n"
                 "dashed: its same-voice threshold (different held-out voices pass on 1 % of pairs)", fontsize=10)
    if turn_sets:
        ax = axes[1, 0]
        for i, (apart, one) in enumerate(turn_sets.values()):
            for flag, colour, dy in ((False, "tab:red", 0.12), (True, "tab:blue", -0.12)):
                v = apart[one == flag]
                ax.scatter(v, i + dy + rng.uniform(-0.08, 0.08, len(v)), s=8, alpha=0.6, color=colour)
        ax.axvline(result["turn_threshold"], color="k", lw=1, ls="--")
        ax.set_yticks(range(len(turn_sets)), list(turn_sets))
        ax.set_xlabel("voices_apart: cosine of the two most different groups of 2-4 s pieces")
        ax.invert_yaxis()
        ax.set_title("one voice throughout (blue) or two taking turns (red)\n"
                     "dashed: the turn threshold (held-out turns pass on 1 %)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"written: {path}")


if __name__ == "__main__":
    main()
