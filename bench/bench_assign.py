"""Two real talkers, both faces seen: each face's voice by lip sync from the blind separator, or by the audio-visual model.

    python bench/bench_assign.py [--real ../shared/data/real] [--separate MODEL] [--light-asd FILE] [--name assign]

The real dev set's two-talker mixtures (``bench_real.py``: each clip's audio with another
talker's clip at -5, 0 and +5 dB), now with *both* faces given, as ``avse separate`` has them
on a video of two talkers, and the same pairs *taking turns*: the target's clip, then the
other's (each at the same level), each face still (its last or first frame held) while the
other talks. For the target's face, its voice by:

- ``av per face``: the shipped ``av`` run with the target's lips (``avse separate --assign av``;
  no attenuation limit, as ``avse separate`` mixes nothing back);
- ``blind, whole clip``: the shipped ``separate``, its outputs given to the two faces once for
  the whole clip by the sync expert's LSE-C (``avse.talking.expert.assign_sources``);
- ``blind, over time``: the same outputs given window by window
  (``avse.talking.expert.assign_over_time``; ``--assign sync``);
- ``auto``: what ``avse separate`` does by default: over time, unless the blind model missed a
  talker (``avse.talking.expert.missed_talker``: an output near silent, the pairing never
  changes, and the face given that output speaks; then ``av per face``);
- ``blind, by Light-ASD`` (with ``--light-asd``, mixtures only): the outputs given by
  Light-ASD's mean "speaking" logit instead (``avse.models.light_asd``, the user's checkpoint);
- ``blind, oracle`` (mixtures only): the better output, the ceiling of a whole-clip assignment;
- ``blind, target's face only``: the outputs given by the target's face alone, over time, as
  ``avse separate --assign sync`` does on a video where only the target is seen (the other talker
  off screen).

Every assignment looks for each face's sync as ``avse separate`` does: around 0, or around the
A/V offset the faces' lips give when it lies beyond that window (``avse.api.video_offset_frames``,
``avse.talking.expert.window_center``), and a talker
beside a listener gets the whole input where ``avse.talking.expert.one_voice`` says so. The
blind outputs are those ``avse separate`` hands to the assignment (``Separator.blind_outputs``).

SI-SDRi of the target's voice (in turns: the target's turn, then silence) with 95 % intervals
per condition, and how often an assignment chose the better output. It also measures what a
2 s window of lip sync tells (``window_calibration``: the windowed LSE-C of each face with its
own speech and with another clip's, the basis of ``avse.talking.expert.SWITCH_COST``), what the
prior of a nearly synced video buys (``offset_prior``: whole-clip LSE-C with own and other clips'
speech, the sync looked for within ``ASSIGN_NEAR`` frames of 0 or over all +-15), what a video
out of sync does to that (``late_sound``: the 0 dB mixtures with the sound 240 ms late, the sync
looked for near 0, near the offset the lips give as ``avse separate`` does, or anywhere), and
what a listener gets (``one_talker``: each clip alone, the other face held still beside it:
the talker's output SI-SDR (the input itself counted as 60 dB), the listener's output level, how often
the pairing changed and how often the talker was given the whole input (``one_voice``);
``one_talker_moving``: the same beside another clip's *moving* face, a listener whose lips move
with words that are not in the sound, harder than a real listener who nods and smiles).
Writes bench/results/NAME.json and NAME.png.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, save  # noqa: E402

from avse import SAMPLES_PER_FRAME  # noqa: E402
from avse.config import DEFAULT_SHIFTS  # noqa: E402

HERE = Path(__file__).resolve().parent
REAL = HERE.parents[1] / "shared" / "data" / "real"
SNRS = (-5.0, 0.0, 5.0)
SR = 16000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--real", type=Path, default=REAL)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "avse_bench_real",
                    help="front-end cache, shared with bench_real.py")
    ap.add_argument("--landmarks-cache", type=Path, default=Path(tempfile.gettempdir()) / "avse_bench_sync_expert",
                    help="the clips' landmarks, shared with bench_sync_expert.py")
    ap.add_argument("--light-asd", type=Path, default=None, help="a Light-ASD checkpoint (e.g. pretrain_AVA_CVPR.model) to compare")
    ap.add_argument("--separate", default="separate", help="the blind separator: a shipped name or a checkpoint path")
    ap.add_argument("--name", default="assign")
    ap.add_argument("--shifts", type=int, default=DEFAULT_SHIFTS, help="the blind separator's shifted runs, averaged (Separator(shifts=N))")
    args = ap.parse_args()
    if not (args.real / "grid").is_dir():
        raise SystemExit(f"no real clips in {args.real}")
    import bench_real as br
    import torch
    from bench_sync_expert import real_clips
    from tqdm import tqdm

    from avse.api import Enhancer, output_levels_db, video_offset_frames
    from avse.evaluation.metrics import si_sdr
    from avse.evaluation.run import mean_ci
    from avse.talking.expert import (
        SyncExpert,
        assign_over_time,
        best_assignment,
        face_voices,
        missed_talker,
        one_voice,
        window_center,
    )

    torch.set_num_threads(2)
    clips = br.load_clips(args.real, args.cache / "frontend")  # lips as avse enhance gets them, audio
    found = real_clips(args.real, args.landmarks_cache)
    crops = [c["faces"] for c in found]  # aligned face crops [N, 96, 96, 3]
    tracks = [c["lips"] for c in found]  # the faces' lip landmarks [N, 40, 2], for the video's A/V offset
    pair = br.partners(clips)
    blind = blind_outputs(args.separate, args.shifts)
    av = Enhancer("av", fallback=None, atten_lim_db=None, shifts=args.shifts)
    expert = SyncExpert.from_pretrained()
    detector = None
    if args.light_asd is not None:
        from avse.models.light_asd import crops_from_faces, load_detector

        detector = load_detector(args.light_asd)
    mixed_methods = (["av per face", "blind, whole clip", "blind, over time", "auto"] + (["blind, by Light-ASD"] if detector else [])
                     + ["blind, target's face only", "blind, oracle"])
    turn_methods = ["av per face", "blind, whole clip", "blind, over time", "auto", "blind, target's face only"]
    rows = []
    t0 = time.perf_counter()
    jobs = [(snr, i) for snr in SNRS for i in range(len(clips))] + [(TURNS, i) for i in range(len(clips))]
    for snr, i in tqdm(jobs, desc="mixtures"):
        c, o = clips[i], clips[pair[i]]
        if snr == TURNS:
            mixture, ref, faces, lips = turns(c, o, crops[i], crops[pair[i]])
            n_a, n_b = len(crops[i]), len(crops[pair[i]])
            seen = [np.concatenate([tracks[i], np.repeat(tracks[i][-1:], n_b, axis=0)]),
                    np.concatenate([np.repeat(tracks[pair[i]][:1], n_a, axis=0), tracks[pair[i]]])]
        else:
            n = len(c.audio)
            mixture, ref = br.mix(c.audio, br.fit(o.audio, n), snr)
            faces = [crops[i], br.fit(crops[pair[i]], len(crops[i]))]  # the target's face, then the other's
            seen = [tracks[i], br.fit(tracks[pair[i]], len(crops[i]))]
            lips = c.features
        base = si_sdr(mixture, ref)
        outs = blind(mixture)  # [2, T]
        sdr = [si_sdr(y, ref) for y in outs]
        center = video_offset_frames([{"lips": t} for t in seen], mixture)  # as avse separate finds it
        res = assign_over_time(faces, outs, expert, center=window_center(center))
        levels = output_levels_db(outs, mixture)
        talker = one_voice(levels, res)
        over_time = face_voices(outs, res, mixture, talker)[0]  # as avse separate gives it (one voice: the whole input)
        row = {"snr": snr, "target": c.name, "other": o.name, "lse_c": np.round(res["lse_c"], 4).tolist(),
               "turns": [[int(f), p] for f, p in res["segments"]],
               "blind_si_sdri": [round(x - base, 3) for x in sdr], "better": int(np.argmax(sdr))}
        est = {"av per face": av.enhance(mixture, SR, video=lips), "blind, whole clip": outs[res["order"][0]],
               "blind, over time": over_time}
        silent = missed_talker(levels, res) is not None
        est["auto"] = est["av per face"] if silent else over_time
        center1 = video_offset_frames([{"lips": seen[0]}], mixture)
        alone = assign_over_time(faces[:1], outs, expert, center=window_center(center1))  # the target's face only: the other off screen
        est["blind, target's face only"] = face_voices(outs, alone)[0]
        row["chosen"] = {"blind, whole clip": res["order"][0], "blind, target's face only": alone["order"][0]}
        if snr != TURNS:
            if detector is not None:
                with torch.no_grad():
                    asd = np.array([[float(detector.scores(crops_from_faces(f), y).mean()) for y in outs] for f in faces])
                k = best_assignment(asd)[0]
                est["blind, by Light-ASD"] = outs[k]
                row["chosen"]["blind, by Light-ASD"] = k
                row["light_asd"] = np.round(asd, 4).tolist()
            est["blind, oracle"] = outs[row["better"]]
        methods = turn_methods if snr == TURNS else mixed_methods
        row["si_sdri"] = {m: round(si_sdr(br.fit(est[m], len(ref)), ref) - base, 3) for m in methods}
        row["used_av"] = bool(silent)
        row["one_voice"] = talker is not None
        row["quieter_output_db"] = round(min(levels), 1)
        rows.append(row)
    summary: dict = {}
    for snr in SNRS + (TURNS,):
        rs = [r for r in rows if r["snr"] == snr]
        s = summary[TURNS if snr == TURNS else f"{snr:+.0f} dB"] = {}
        for m in rs[0]["si_sdri"]:
            ci = mean_ci([r["si_sdri"][m] for r in rs])
            s[m] = {"si_sdri": round(ci["mean"], 3), "ci95": round(ci["mean"] - ci["ci_low"], 3), "n": ci["n"]}
            if m in rs[0]["chosen"] and snr != TURNS:
                s[m]["chose_better"] = round(float(np.mean([r["chosen"][m] == r["better"] for r in rs])), 3)
        s["auto"]["used_av"] = int(sum(r["used_av"] for r in rs))
        s["blind, over time"]["one_voice"] = int(sum(r["one_voice"] for r in rs))
        s["blind, over time"]["quieter_output_db_median"] = float(np.median([r["quieter_output_db"] for r in rs]))
        s["blind, over time"]["changed_pairing"] = int(sum(len(r["turns"]) > 1 for r in rs))
    late = late_sound(clips, crops, tracks, pair, blind, expert)
    one = one_talker(clips, crops, tracks, pair, blind, av, expert)
    moving = one_talker(clips, crops, tracks, pair, blind, av, expert, moving=True)
    result = {"separate": args.separate, "shifts": args.shifts, "clips": len(clips), "mixtures": len(rows), "methods": mixed_methods, "seconds": round(time.perf_counter() - t0, 1),
              "summary": summary, "late_sound": late["summary"], "one_talker": one["summary"], "one_talker_moving": moving["summary"], "window_calibration": window_calibration(clips, crops, pair, expert),
              "offset_prior": offset_prior(clips, crops, expert),
              "rows": rows, "late_sound_rows": late["rows"], "one_talker_rows": one["rows"],
              "one_talker_moving_rows": moving["rows"]}
    save(args.name, result)
    plot(summary, mixed_methods, RESULTS / f"{args.name}.png")
    for snr, s in summary.items():
        print(snr, "  ".join(f"{m}: {v['si_sdri']:+.2f} ± {v['ci95']:.2f}" + (f" ({v['chose_better']:.0%})" if "chose_better" in v else "")
                             for m, v in s.items()))
    print(f"sound {LATE_FRAMES} frames late, 0 dB:", result["late_sound"])
    print("one talker, the other face listening:", result["one_talker"])
    print("one talker, beside another clip's moving face:", result["one_talker_moving"])
    print("windowed LSE-C (2 s):", result["window_calibration"])
    print("whole-clip LSE-C, sync looked for near 0 or anywhere:", result["offset_prior"])


TURNS = "turns"


def blind_outputs(spec: str, shifts: int = 1):
    """The blind separator's outputs as ``avse separate`` hands them to the faces (``Separator.blind_outputs``,
    before its one-voice rule; ``shifts`` as for ``Separator``): -> a function audio [T] at 16 kHz -> [S, T]."""
    from avse.api import Separator

    sep = Separator(spec, av=None, shifts=shifts)
    return lambda audio: sep.blind_outputs(audio)[0]


def turns(c, o, faces_c: np.ndarray, faces_o: np.ndarray) -> tuple:
    """Two talkers taking turns: c's clip, then o's, each at the same level; each face held still while the other
    talks -> (audio [T], c's voice then silence [T], the two faces' crops [N, 96, 96, 3], c's lip features [N, 82])."""
    import bench_real as br

    na, nb = len(faces_c), len(faces_o)
    mixture, ref = br.turn_audio(br.fit(c.audio, na * SAMPLES_PER_FRAME), br.fit(o.audio, nb * SAMPLES_PER_FRAME))
    face_c = np.concatenate([faces_c, np.repeat(faces_c[-1:], nb, axis=0)])
    face_o = np.concatenate([np.repeat(faces_o[:1], na, axis=0), faces_o])
    feats = br.fit(c.features, na)
    lips = np.concatenate([feats, np.repeat(feats[-1:], nb, axis=0)])
    return mixture, ref, [face_c, face_o], lips


LATE_FRAMES = 6  # 240 ms: a video whose sound is well off its picture


def late_sound(clips, crops, tracks, pair, blind, expert) -> dict:
    """The 0 dB mixtures with both faces, the sound LATE_FRAMES frames late (as in a video out of sync): the target's
    voice (SI-SDRi, over time) with the sync looked for near 0 (``ASSIGN_NEAR``, the offset not measured), near the
    offset the faces' lips give (``avse.api.video_offset_frames``, as ``avse separate`` does) and over all +-15
    frames. Also how often the lips found the offset (within a frame)."""
    import bench_real as br

    from avse.api import video_offset_frames
    from avse.evaluation.metrics import si_sdr
    from avse.talking.expert import assign_over_time, face_voices, window_center

    rows = []
    delay = LATE_FRAMES * SAMPLES_PER_FRAME
    for i, c in enumerate(clips):
        o, n = clips[pair[i]], len(crops[i])
        mixture, ref = br.mix(c.audio, br.fit(o.audio, len(c.audio)), 0.0)
        mixture, ref = (np.concatenate([np.zeros(delay, np.float32), y])[: len(y)] for y in (mixture, ref))
        faces = [crops[i], br.fit(crops[pair[i]], n)]
        found = video_offset_frames([{"lips": tracks[i]}, {"lips": br.fit(tracks[pair[i]], n)}], mixture)
        base = si_sdr(mixture, ref)
        outs = blind(mixture)
        row = {"target": c.name, "found_offset": found, "si_sdri": {}}
        for label, kw in (("near 0", {}), ("near the lips' offset", {"center": window_center(found)}), ("anywhere", {"near": None})):
            y = face_voices(outs, assign_over_time(faces, outs, expert, **kw))[0]
            row["si_sdri"][label] = round(si_sdr(br.fit(y, len(ref)), ref) - base, 3)
        rows.append(row)
    summary = {m: round(float(np.mean([r["si_sdri"][m] for r in rows])), 3) for m in rows[0]["si_sdri"]}
    summary["lips_found_offset"] = int(sum(r["found_offset"] is not None and abs(r["found_offset"] - LATE_FRAMES) <= 1
                                           for r in rows))
    return {"summary": summary, "rows": rows}


def one_talker(clips, crops, tracks, pair, blind, av, expert, moving: bool = False) -> dict:
    """Each real clip alone (clean), its face beside another clip's face held still (a listener; with ``moving``
    that face as it moves in its own clip, looped, its lips saying words that are not in the sound): what each face
    gets. Per method (``av per face``, ``blind, over time``, ``auto``): the talker's output SI-SDR against the clean
    clip, the listener's output level against the input (dB; lower is better), and how often the pairing changed."""
    import bench_real as br

    from avse.api import output_levels_db, video_offset_frames
    from avse.evaluation.metrics import si_sdr
    from avse.talking.expert import assign_over_time, face_voices, missed_talker, one_voice, window_center

    rows = []
    for i, c in enumerate(clips):
        x = br.fit(c.audio, len(crops[i]) * SAMPLES_PER_FRAME)
        other = br.fit(crops[pair[i]], len(crops[i])) if moving else np.repeat(crops[pair[i]][:1], len(crops[i]), axis=0)
        faces = [crops[i], other]
        n = len(crops[i])
        other_lips = br.fit(tracks[pair[i]], n) if moving else np.repeat(tracks[pair[i]][:1], n, axis=0)
        center = video_offset_frames([{"lips": tracks[i]}, {"lips": other_lips}], x)
        outs = blind(x)
        res = assign_over_time(faces, outs, expert, center=window_center(center))
        levels = output_levels_db(outs, x)
        talker = one_voice(levels, res)
        over_time = face_voices(outs, res, x, talker)
        listener = (br.fit(clips[pair[i]].features, len(c.features)) if moving
                    else np.repeat(c.features[-1:], len(c.features), axis=0))  # the listener's lips: moving, or one frame held
        per_face = np.stack([av.enhance(x, SR, video=c.features), av.enhance(x, SR, video=listener)])
        silent = missed_talker(levels, res) is not None
        est = {"av per face": per_face, "blind, over time": over_time, "auto": per_face if silent else over_time}
        rows.append({"target": c.name, "changed_pairing": len(res["segments"]) > 1, "used_av": bool(silent),
                     "one_voice": talker is not None, "quieter_output_db": round(min(levels), 1),
                     **{m: {"talker_si_sdr": round(min(si_sdr(br.fit(y[0], len(x)), x), SDR_CAP), 2),
                            "listener_db": round(output_levels_db(y[1:2], x)[0], 1)} for m, y in est.items()}})
    summary = {m: {"talker_si_sdr_mean": round(float(np.mean([r[m]["talker_si_sdr"] for r in rows])), 2),
                   "listener_db_median": round(float(np.median([r[m]["listener_db"] for r in rows])), 1),
                   "listener_under_-20_db": int(sum(r[m]["listener_db"] < -20 for r in rows))}
               for m in ("av per face", "blind, over time", "auto")}
    summary["changed_pairing"] = int(sum(r["changed_pairing"] for r in rows))
    summary["auto_used_av"] = int(sum(r["used_av"] for r in rows))
    summary["one_voice"] = int(sum(r["one_voice"] for r in rows))
    summary["quieter_output_db_median"] = float(np.median([r["quieter_output_db"] for r in rows]))
    return {"summary": summary, "rows": rows}


SDR_CAP = 60.0  # a talker given the whole input scores the input itself: its SI-SDR is counted as 60 dB


def window_calibration(clips, crops, pair, expert) -> dict:
    """Windowed LSE-C (2 s windows every 1 s, at each clip's own A/V offset) of every real clip's face with its own
    speech and with its partner's -> percentiles of both and of their difference, per window."""
    import bench_real as br

    from avse.talking.expert import (
        ASSIGN_HOP,
        ASSIGN_NEAR,
        ASSIGN_WINDOW,
        audio_embeddings,
        lse_from_embeddings,
        video_embeddings,
        window_confidence,
    )

    own, other = [], []
    for i, c in enumerate(clips):
        n = len(crops[i])
        v = video_embeddings(expert, crops[i])
        a = audio_embeddings(expert, c.audio, n)
        b = audio_embeddings(expert, br.fit(clips[pair[i]].audio, len(c.audio)), n)
        offset = lse_from_embeddings(v, a, 15, ASSIGN_NEAR)["offset_frames"]  # as assign_over_time finds it
        starts = list(range(0, n - ASSIGN_WINDOW + 1, ASSIGN_HOP))
        own += list(window_confidence(v, a, offset, 15, starts, ASSIGN_WINDOW))
        other += list(window_confidence(v, b, offset, 15, starts, ASSIGN_WINDOW))
    own_a, other_a = np.array(own), np.array(other)
    pct = (5, 10, 50, 90, 95)

    def q(x: np.ndarray) -> dict:
        return {f"p{p}": round(float(np.percentile(x, p)), 4) for p in pct}

    return {"windows": len(own), "own": q(own_a), "other": q(other_a), "own_minus_other": q(own_a - other_a),
            "own_above_other": round(float(np.mean(own_a > other_a)), 3)}


def offset_prior(clips, crops, expert) -> dict:
    """Whole-clip LSE-C of every real clip's face with its own speech and with every other clip's, the sync looked
    for over all offsets (+-15 frames) and near 0 (``avse.talking.expert.ASSIGN_NEAR``) -> percentiles of both, how
    often own beats other (over all pairs), and each clip's own offset (the basis of ``ASSIGN_NEAR``)."""
    import bench_real as br

    from avse.talking.expert import ASSIGN_NEAR, audio_embeddings, offset_distances, video_embeddings

    curves = np.empty((len(clips), len(clips), 31))  # [face, speech, offset -15..15]
    for i in range(len(clips)):
        n = len(crops[i])
        v = video_embeddings(expert, crops[i])
        for j, d in enumerate(clips):
            curves[i, j] = offset_distances(v, audio_embeddings(expert, br.fit(d.audio, n * SAMPLES_PER_FRAME), n), 15).numpy()
    own_offsets = [int(np.argmin(curves[i, i])) - 15 for i in range(len(clips))]
    out: dict = {"own_offset_frames": own_offsets, "in_sync_within_near": int(sum(abs(o) <= ASSIGN_NEAR for o in own_offsets))}
    for label, near in (("all_offsets", 15), ("near", ASSIGN_NEAR)):
        c = np.median(curves, axis=-1) - curves[..., 15 - near : 16 + near].min(axis=-1)  # [face, speech]
        own = np.diag(c)
        other = c[~np.eye(len(clips), dtype=bool)]
        out[label] = {"near": near, "own": {f"p{p}": round(float(np.percentile(own, p)), 4) for p in (10, 50)},
                      "other": {f"p{p}": round(float(np.percentile(other, p)), 4) for p in (50, 90, 95, 99)},
                      "own_above_other": round(float(np.mean(own[:, None] > other[None, :])), 3)}
    return out


def plot(summary: dict, methods: list[str], path: Path) -> None:
    """Bars of each method's mean SI-SDRi per SNR with the 95 % intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    snrs = list(summary)
    fig, ax = plt.subplots(figsize=(8, 4))
    w = 0.8 / len(methods)
    for k, m in enumerate(methods):
        x = np.arange(len(snrs)) + (k - (len(methods) - 1) / 2) * w
        have = [s for s in snrs if m in summary[s]]  # the turns have no Light-ASD or oracle bar
        xs = [x[snrs.index(s)] for s in have]
        ax.bar(xs, [summary[s][m]["si_sdri"] for s in have], w, yerr=[summary[s][m]["ci95"] for s in have], label=m, capsize=3)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(np.arange(len(snrs)), [("taking turns" if s == TURNS else f"target at {s}") for s in snrs])
    ax.set_ylabel("SI-SDRi of the target's voice (dB)")
    ax.set_title("Two real talkers, both faces seen (23 real clips)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
