"""Blind two-talker separation, on the synthetic test scenes or on real voices: SI-SDRi of both voices.

    python bench/bench_separate.py [--root data/models] [--model separate] [--name separate]
    python bench/bench_separate.py --real ../shared/data/real [--model separate] [--name separate_real]

Uses the test scenes of ``--root`` (for data/models, those that bench_models.py builds: run it first; for the
TTS voices of data/tts_models, 96 scenes of two voices at -15..+5 dB:
``avse scenes build data/tts_models --dataset test --scenes 96 --p-speech 1`` and
``avse scenes render data/tts_models --dataset test``). Each mixture of
a target and a competing talker goes through the blind model as ``avse.api.Separator``
runs it without video (chunked, the outputs on the input's scale), before its one-voice
rule; its two outputs are paired with the two voices in the order
that gives the higher mean SI-SDR (the output order of a blind model is
arbitrary), and the SI-SDR improvement of each voice is reported; ``one_voice`` counts the
mixtures where ``avse separate`` would give one output the whole input (``Separator.one_voice_blind``:
the other 20 dB or more under it, ``avse.api.ONE_VOICE_BLIND_DB``, or 10 dB or more and no two voices
at once by the overlap detector; ``--overlap none``: the level rule alone), and ``one_voice_separated``
those of them where the model had improved the quieter voice by 3 dB or more (a second talker lost). Writes
bench/results/NAME.json (default separate.json).

``--real DIR``: the real dev set instead (the 23 clips of ../shared/data/real, audio only, nothing
of their faces): bench_real.py's two-talker mixtures (each clip with another talker's at -5, 0 and
+5 dB, the same pairs), scored as above per SNR with 95 % intervals, plus "better output" (the
target's SI-SDRi from the output nearer to it, bench_real.py's oracle row; "as given": after the
one-voice rule, as ``avse separate`` gives it); and each clip alone,
passed through as ``avse separate`` gives it without faces (``Separator.separate``, its one-voice
rule included): PESQ-WB and STOI of the output nearer to the clip, the quieter output's level
against the input, and how many clips came out whole in one output; and each clip followed by its
partner's clip (two talkers taking turns, the second at the same level and 6 dB lower): both voices'
SI-SDRi, how many pairs ``avse separate`` would give back as one voice, and how many of those the model
had separated (both voices improved by 3 dB or more: a talker lost); and 12 conversations (a dev clip
and its partner's, 8 turns in all, each a whole clip, one after the other) as ``avse separate`` gives
them: each talker's SI-SDRi from the output nearer to it, how many came back as one voice, and in how
many each talker's turns all went to one output and the other's to the other (by 6 dB or more).
Seconds, not the half hour of bench_real.py: for comparing separators on real voices. ``--speaker PATH``: a speaker encoder in the
one-voice rule (``Separator(speaker=...)``), comparing the input's own pieces (``--speaker-by input``, the default;
"similarity" in the JSON is then ``voices_apart``) or the two outputs (``--speaker-by outputs``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save  # noqa: E402

from avse.config import DEFAULT_SHIFTS  # noqa: E402


def _speaker_measure(info: dict | None) -> float | None:
    """What the speaker encoder measured in a one-voice check: the outputs' similarity ("outputs") or the input's
    ``voices_apart`` ("input"); None when it was not asked or heard too little."""
    info = info or {}
    return info.get("speaker_similarity", info.get("voices_apart"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="data/models")
    p.add_argument("--model", default="separate", help="a shipped name or a checkpoint path")
    p.add_argument("--name", default=None, help="results name: bench/results/NAME.json (default separate, separate_real)")
    p.add_argument("--real", type=Path, default=None, help="the real dev set (e.g. ../shared/data/real) instead of --root")
    p.add_argument("--work", type=Path, default=None, help="bench_real.py's work folder (its front-end cache is reused)")
    p.add_argument("--overlap", default="shipped", help="the overlap detector of the one-voice rule (a checkpoint "
                   "path; 'shipped'; 'none': the level rule alone)")
    p.add_argument("--speaker", default="none", help="a speaker encoder for the one-voice rule (a checkpoint path; "
                   "'none', the default, as avse separate runs: without one)")
    p.add_argument("--speaker-by", choices=["input", "outputs"], default="input",
                   help="what the encoder compares (avse.api.ONE_VOICE_SPEAKER_BY): the input's own pieces, one voice "
                   "throughout or two taking turns ('input', the default), or the blind model's two outputs ('outputs')")
    p.add_argument("--quiet-rule", choices=["gated", "level"], default="gated",
                   help="with --speaker-by outputs, a quieter output at or under -10 dB is merged only for the same "
                   "voice ('gated', avse.api.ONE_VOICE_SPEAKER_GATES_QUIET) or by level as without the encoder ('level')")
    p.add_argument("--turn-threshold", type=float, default=None,
                   help="with --speaker-by input, the voices_apart at or over which the input is one voice "
                   "(avse.api.ONE_VOICE_TURN_THRESHOLD; default: the encoder's val.turn_threshold)")
    p.add_argument("--shifts", type=int, default=DEFAULT_SHIFTS,
                   help="run the blind model this many times on shifted inputs and average (Separator(shifts=N))")
    args = p.parse_args()
    args.overlap = {"shipped": True, "none": False}.get(args.overlap, args.overlap)
    args.speaker = False if args.speaker == "none" else args.speaker
    import avse.api

    avse.api.ONE_VOICE_SPEAKER_GATES_QUIET = args.quiet_rule == "gated"
    avse.api.ONE_VOICE_SPEAKER_BY = args.speaker_by
    avse.api.ONE_VOICE_TURN_THRESHOLD = args.turn_threshold
    if args.real is not None:
        return real(args)
    from avse.api import Separator
    from avse.audio.io import load_audio
    from avse.data.metadata import load_scenes, scenes_dir, scenes_path

    root = Path(args.root)
    folder = scenes_dir(root, "test")
    sep = Separator(args.model, av=None, overlap=args.overlap, speaker=args.speaker, shifts=args.shifts)
    gains = []
    one_voice = 0
    lost = 0  # one-voice mixtures where the model had pulled out the quieter voice (by 3 dB or more)
    for s in load_scenes(scenes_path(root, "test")):
        if s["interferer"]["type"] != "speech":
            continue
        mix, tgt, itf = (load_audio(folder / f"{s['scene']}_{k}.wav", 16000)[0] for k in ("mixed", "target", "interferer"))
        est = sep.blind_outputs(mix)[0][:, : len(mix)]  # [2, T]
        gains.append(_pit_gains(est, (tgt, itf), mix))
        whole = sep.one_voice_blind(est, mix) is not None
        one_voice += int(whole)
        quieter = int(np.sum(itf.astype(np.float64) ** 2) < np.sum(tgt.astype(np.float64) ** 2))  # 0: the target
        lost += int(whole and gains[-1][quieter] >= 3.0)
    g = np.asarray(gains)  # [N, 2]: target, competing talker
    result = {
        "model": args.model,
        "shifts": args.shifts,
        "scenes": len(g),
        "mean_si_sdri_db": float(g.mean()),
        "mean_si_sdri_target_db": float(g[:, 0].mean()),
        "mean_si_sdri_competing_db": float(g[:, 1].mean()),
        "share_both_improved": float(np.mean(np.all(g > 0, axis=1))),
        "one_voice": one_voice,
        "one_voice_separated": lost,
        "overlap": str(args.overlap),
        "speaker": str(args.speaker),
        "quiet_rule": args.quiet_rule,
        **_speaker_rule(sep),
    }
    save(args.name or "separate", result)


def _speaker_rule(sep) -> dict:
    """What the one-voice rule's speaker encoder compared and at what threshold, as the run used them (None without
    an encoder): "speaker_by" (``Separator.speaker_rule``: an encoder without a turn threshold compares the outputs
    whatever was asked) and "turn_threshold" or "same_speaker_threshold"."""
    from avse.api import Separator

    enc = sep.speaker_encoder()
    if enc is None:
        return {"speaker_by": None}
    rule = Separator.speaker_rule(enc)
    if rule == "input":
        return {"speaker_by": rule, "turn_threshold": Separator.turn_threshold(enc)}
    return {"speaker_by": rule, "same_speaker_threshold": Separator.same_speaker_threshold(enc)}


def _pit_gains(est: np.ndarray, refs: tuple[np.ndarray, np.ndarray], mixture: np.ndarray) -> list[float]:
    """The SI-SDR improvement of each of two voices ``refs`` from the outputs ``est`` [2, T], paired in the order
    that gives the higher mean SI-SDR."""
    from avse.evaluation.metrics import si_sdr

    pairs = [[si_sdr(est[i], refs[j]) for j in range(2)] for i in range(2)]  # [output][voice]
    order = (0, 1) if pairs[0][0] + pairs[1][1] >= pairs[0][1] + pairs[1][0] else (1, 0)
    return [pairs[order[j]][j] - si_sdr(mixture, refs[j]) for j in range(2)]


def real(args: argparse.Namespace) -> None:
    """The ``--real`` mode (see the module docstring)."""
    import tempfile

    from bench_real import SR, build_items, load_clips

    from avse.api import Separator, output_levels_db
    from avse.evaluation.metrics import pesq_wb, si_sdr, stoi
    from avse.evaluation.run import mean_ci

    work = args.work or Path(tempfile.gettempdir()) / "avse_bench_real"
    clips = load_clips(args.real, work / "frontend")
    items = build_items(clips, {}, quick=False)
    sep = Separator(args.model, av=None, overlap=args.overlap, speaker=args.speaker, shifts=args.shifts)
    by_snr: dict[str, list[list[float]]] = {}
    better: dict[str, list[float]] = {}
    better_given: dict[str, list[float]] = {}
    one_voice: dict[str, int] = {}
    clean: dict[str, list[float]] = {"pesq_wb": [], "stoi": [], "quieter_db": []}
    clean_whole = 0
    turn_stats: dict[str, dict] = {}
    clean_similarity: list[float] = []  # what the speaker encoder measured (_speaker_measure), where it was asked
    per_item: dict[str, float] = {}  # item id -> mean SI-SDRi of both voices (two-talker) or PESQ-WB (clean), for paired comparisons
    for it in items:
        if it.condition == "two-talker":
            key = f"{it.snr:+.0f} dB"
            est = sep.blind_outputs(it.mixture)[0][:, : len(it.mixture)]  # [2, T]
            by_snr.setdefault(key, []).append(_pit_gains(est, (it.reference, it.mixture - it.reference), it.mixture))
            per_item[it.id] = float(np.mean(by_snr[key][-1]))
            base = si_sdr(it.mixture, it.reference)
            better.setdefault(key, []).append(max(si_sdr(o, it.reference) for o in est) - base)
            whole = sep.one_voice_blind(est, it.mixture)
            one_voice[key] = one_voice.get(key, 0) + int(whole is not None)
            given = est if whole is None else np.stack([it.mixture, np.zeros_like(it.mixture)])  # as avse separate gives it
            better_given.setdefault(key, []).append(max(si_sdr(o, it.reference) if np.any(o) else -np.inf for o in given) - base)
        elif it.condition == "clean":
            outs = sep.separate(it.mixture, SR)  # [2, T]: as avse separate gives it without faces
            near = outs[int(np.argmax([si_sdr(o, it.reference) if np.any(o) else -np.inf for o in outs]))]
            clean["pesq_wb"].append(pesq_wb(near, it.reference))
            clean["stoi"].append(stoi(near, it.reference))
            clean["quieter_db"].append(min(output_levels_db(outs, it.mixture)))
            per_item[it.id] = clean["pesq_wb"][-1]
            clean_whole += int(bool((sep.last_info or {}).get("one_voice")))
            if _speaker_measure(sep.last_info) is not None:
                clean_similarity.append(_speaker_measure(sep.last_info))
    turns = turn_items(clips)
    for key, (mixture, ref_a, ref_b) in turns.items():
        est = sep.blind_outputs(mixture)[0][:, : len(mixture)]
        info: dict = {}
        whole = sep.one_voice_blind(est, mixture, info)
        kind = key.split("/")[0]
        t = turn_stats.setdefault(kind, {"pairs": 0, "one_voice": 0, "lost": 0, "both_voices": [], "similarity": []})
        gains = _pit_gains(est, (ref_a, ref_b), mixture)
        t["pairs"] += 1
        t["one_voice"] += int(whole is not None)
        t["lost"] += int(whole is not None and min(gains) >= 3.0)
        t["both_voices"].append(float(np.mean(gains)))
        if _speaker_measure(info) is not None:
            t["similarity"].append(_speaker_measure(info))
            if min(gains) >= 3.0:  # a pair the model had separated: two voices for sure
                t.setdefault("separated_similarity", []).append(_speaker_measure(info))
    conv = conversations(clips)
    conv_rows = []
    for key, (mixture, segments) in conv.items():
        given = sep.separate(mixture, SR)  # [2, T], as avse separate gives it without faces
        refs = [np.concatenate([x if w == j else np.zeros_like(x) for x, w in segments]) for j in (0, 1)]
        gains = [max((si_sdr(o, r) if np.any(o) else -np.inf) for o in given) - si_sdr(mixture, r) for r in refs]
        owners: dict[int, set[int]] = {0: set(), 1: set()}
        pos = 0
        for x, w in segments:
            if w >= 0:
                e = [float(np.sum(o[pos : pos + len(x)].astype(np.float64) ** 2)) + 1e-12 for o in given]
                k = int(np.argmax(e))
                owners[w].add(k if 10 * np.log10(e[k] / e[1 - k]) >= 6.0 else -1)  # -1: the turn is in both outputs
            pos += len(x)
        apart = len(owners[0]) == 1 and len(owners[1]) == 1 and -1 not in owners[0] | owners[1] and owners[0] != owners[1]
        conv_rows.append({"talkers": key, "seconds": round(len(mixture) / SR, 1), "one_voice": bool(sep.last_info.get("one_voice")),
                          "si_sdri": [round(float(g), 2) for g in gains], "turns_apart": bool(apart)})
    result: dict = {"model": args.model, "real": str(args.real), "shifts": args.shifts, "overlap": str(args.overlap), "speaker": str(args.speaker),
                    "quiet_rule": args.quiet_rule, **_speaker_rule(sep), "two_talker": {}}
    for key, gains in by_snr.items():
        g = np.asarray(gains)  # [N, 2]: target, other talker
        result["two_talker"][key] = {
            "mixtures": len(g),
            "si_sdri_both": mean_ci(list(g.mean(axis=1))),
            "better_output": mean_ci(better[key]),
            "better_output_as_given": mean_ci(better_given[key]),
            "share_both_improved": float(np.mean(np.all(g > 0, axis=1))),
            "one_voice": one_voice[key],
        }
    result["two_talker_all"] = mean_ci([float(np.mean(x)) for v in by_snr.values() for x in v])
    result["clean"] = {k: mean_ci(v) for k, v in clean.items()} | {"clips": len(clean["stoi"]), "whole": clean_whole}
    result["clean"]["quieter_db_median"] = float(np.median(clean["quieter_db"]))
    if clean_similarity:
        result["clean"]["similarity"] = mean_ci(clean_similarity) | {"values": clean_similarity}
    result["turns"] = {k: {"pairs": v["pairs"], "one_voice": v["one_voice"], "one_voice_separated": v["lost"],
                           "si_sdri_both": mean_ci(v["both_voices"]),
                           "similarity": (mean_ci(v["similarity"]) | {"values": v["similarity"]}) if v["similarity"] else None,
                           "similarity_separated_pairs": v.get("separated_similarity")}
                       for k, v in turn_stats.items()}
    finite = [g for r in conv_rows for g in r["si_sdri"] if np.isfinite(g)]
    result["conversations"] = {"count": len(conv_rows), "one_voice": int(sum(r["one_voice"] for r in conv_rows)),
                               "turns_apart": int(sum(r["turns_apart"] for r in conv_rows)),
                               "si_sdri_talkers": mean_ci(finite) if finite else None, "rows": conv_rows}
    result["items"] = per_item
    save(args.name or "separate_real", result)


def conversations(clips: list, turns: int = 8, seed: int = 0) -> dict[str, tuple[np.ndarray, list]]:
    """Two real talkers in a conversation, one after the other with 0.1-0.5 s pauses: each dev clip with its partner
    (bench_real.py's pairs, the first 12), ``turns`` turns in all, each a whole clip at the same level ->
    {"A|B": (mixture [T], [(segment [n], 0 / 1 the talker, or -1 a pause), ...])}, deterministic. ``clips``:
    bench_real.py's ``load_clips``."""
    from bench_real import partners

    pair = partners(clips)
    rng = np.random.default_rng(seed)
    out = {}
    for i, c in enumerate(clips[:12]):
        o = clips[pair[i]]
        segments: list = []
        for k in range(turns):
            x = (c, o)[k % 2].audio.astype(np.float64)
            segments.append(((x / (np.std(x) + 1e-12) * 0.05).astype(np.float32), k % 2))
            segments.append((np.zeros(int(rng.uniform(0.1, 0.5) * 16000), np.float32), -1))
        out[f"{c.name}|{o.name}"] = (np.concatenate([x for x, _ in segments]), segments)
    return out


def turn_items(clips: list) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Two real talkers taking turns, as bench_assign.py builds them without faces: each dev clip, then its partner's
    clip (bench_real.py's pairs) at the same level ("turns 0 dB") and 6 dB lower ("turns -6 dB") -> {kind/clip:
    (mixture [T], the first voice then silence [T], silence then the second voice [T])}. ``clips``: bench_real.py's
    ``load_clips``."""
    from bench_real import partners

    pair = partners(clips)
    out = {}
    for i, c in enumerate(clips):
        a = c.audio.astype(np.float64)
        b = clips[pair[i]].audio.astype(np.float64)
        for db in (0.0, -6.0):
            bb = b * (np.std(a) / (np.std(b) + 1e-12)) * 10 ** (db / 20)
            mixture = np.concatenate([a, bb]).astype(np.float32)
            ra = np.concatenate([a, np.zeros_like(bb)]).astype(np.float32)
            rb = np.concatenate([np.zeros_like(a), bb]).astype(np.float32)
            out[f"turns {db:+.0f} dB/{i:02d}"] = (mixture, ra, rb)
    return out


if __name__ == "__main__":
    main()
