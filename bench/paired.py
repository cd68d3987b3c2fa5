"""Paired differences between two methods of one bench_real.py run: mean, 95 % interval and share of inputs improved.

    python bench/paired.py bench/results/real_separate_clean.json separate sep-clean-last [--json]
    python bench/paired.py --items bench/results/separate_real_A.json bench/results/separate_real_B.json

The second form compares two runs of bench_separate.py (or any two results files with the same ``items``:
one number per input), B minus A, per kind of input (the item names' prefix: "2t" for the two-talker
mixtures, both voices' SI-SDRi; "clean" for the clean clips, PESQ-WB as given).

Two methods scored on the same inputs differ by less than their own intervals
suggest: each input's difficulty cancels. For every condition of the run
(two-talker, noise, clean; all SNRs together) and every metric both methods have
(for audio-visual models also the lips' steer, SI-SDRi with the target's face minus
with the other talker's, and the gain over no face), the difference B - A per input,
its mean with a 95 % Student-t interval, and the share of inputs where B is higher. ``--json`` writes
bench/results/paired_RUN_A_B.json as well. The README's "paired" numbers come from here.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save  # noqa: E402

METRICS = ("si_sdri", "pesq_wb", "stoi", "dnsmos_ovrl")
# what the face does, where bench_real.py ran an audio-visual model three ways: its SI-SDRi with the target's face
# minus with the other talker's ("steer", the lips' steer) and minus with no face ("face_gain")
FACE_MEASURES = {"steer": " (other face)", "face_gain": " (no face)"}


def _face_measure(row: dict, method: str, suffix: str) -> float | None:
    own, other = row["methods"].get(method, {}).get("si_sdri"), row["methods"].get(method + suffix, {}).get("si_sdri")
    return None if own is None or other is None else own - other


def paired(rows: list[dict], a: str, b: str) -> dict[str, dict[str, dict[str, float]]]:
    """bench_real rows -> {condition: {metric: {mean, ci95, n, share_better}}} of method ``b`` minus method ``a``
    (metrics: METRICS, and FACE_MEASURES where both were run with the other face and with none)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for cond in dict.fromkeys(r["condition"] for r in rows):
        for metric in (*METRICS, *FACE_MEASURES):
            diffs = []
            for r in rows:
                if metric in FACE_MEASURES:
                    va, vb = _face_measure(r, a, FACE_MEASURES[metric]), _face_measure(r, b, FACE_MEASURES[metric])
                else:
                    va, vb = r["methods"].get(a, {}).get(metric), r["methods"].get(b, {}).get(metric)
                if r["condition"] == cond and va is not None and vb is not None:
                    diffs.append(vb - va)
            st = _stats(diffs)
            if st is not None:
                out.setdefault(cond, {})[metric] = st
    return out


def _stats(diffs: list[float]) -> dict[str, float] | None:
    """Paired differences -> {mean, ci95, n, share_better} (non-finite ones left out), or None with too few."""
    from avse.evaluation.run import mean_ci

    ci = mean_ci(diffs)  # non-finite differences are left out there
    if ci["ci_low"] is None:
        return None
    d = np.asarray([x for x in diffs if math.isfinite(x)])
    return {"mean": ci["mean"], "ci95": ci["mean"] - ci["ci_low"], "n": ci["n"], "share_better": float(np.mean(d > 0))}


def paired_items(a: dict[str, float], b: dict[str, float]) -> dict[str, dict[str, float]]:
    """Two runs' ``items`` ({input name: number}) -> {kind: {mean, ci95, n, share_better}} of ``b`` minus ``a`` over
    the inputs both have, the kind being the name up to its first "_"; a name in only one run is an error."""
    if set(a) != set(b):
        odd = sorted(set(a) ^ set(b))
        raise SystemExit(f"the two runs scored different inputs ({len(odd)} differ, e.g. {odd[0]})")
    out: dict[str, dict[str, float]] = {}
    for kind in dict.fromkeys(k.split("_")[0] for k in a):
        st = _stats([b[k] - a[k] for k in a if k.split("_")[0] == kind])
        if st is not None:
            out[kind] = st
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, help="a bench_real.py results file (bench/results/NAME.json); with --items, run A")
    ap.add_argument("a", help="the method to compare against; with --items, run B's results file")
    ap.add_argument("b", nargs="?", help="the method compared (not with --items)")
    ap.add_argument("--items", action="store_true", help="compare two results files' per-input items (bench_separate.py)")
    ap.add_argument("--json", action="store_true", help="also write bench/results/paired_RUN_A_B.json")
    args = ap.parse_args()
    if args.items:
        if args.b is not None:
            raise SystemExit("--items takes two results files, not methods")
        run_b = Path(args.a)
        items = [json.loads(f.read_text()).get("items") for f in (args.run, run_b)]
        if not all(isinstance(x, dict) for x in items):
            raise SystemExit("--items: both results files need an 'items' mapping (bench_separate.py writes one)")
        result = paired_items(items[0], items[1])
        print(f"{run_b.name} minus {args.run.name}, paired over the same inputs:")
        for kind, v in result.items():
            print(f"  {kind:10s} {v['mean']:+.3f} ± {v['ci95']:.3f}  (n={v['n']}, higher on {v['share_better']:.0%})")
        if args.json:
            save(f"paired_{args.run.stem}_{run_b.stem}", {"a": args.run.name, "b": run_b.name, "paired": result})
        return
    if args.b is None:
        raise SystemExit("give the two methods to compare (or --items with two results files)")
    data = json.loads(args.run.read_text())
    rows = data["rows"]
    known = set().union(*(r["methods"] for r in rows)) if rows else set()
    for m in (args.a, args.b):
        if m not in known:
            raise SystemExit(f"{args.run}: no method {m!r} (has: {', '.join(sorted(known))})")
    result = paired(rows, args.a, args.b)
    print(f"{args.b} minus {args.a} ({args.run.name}), paired over the same inputs:")
    for cond, metrics in result.items():
        for metric, v in metrics.items():
            print(f"  {cond:10s} {metric:12s} {v['mean']:+.3f} ± {v['ci95']:.3f}  (n={v['n']}, higher on {v['share_better']:.0%})")
    if args.json:
        save(f"paired_{args.run.stem}_{args.a}_{args.b}", {"run": args.run.name, "a": args.a, "b": args.b, "paired": result})


if __name__ == "__main__":
    main()
