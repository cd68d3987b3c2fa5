"""Blind two-talker separation on the synthetic test scenes with a competing talker: SI-SDRi of both voices.

    python bench/bench_separate.py [--root data/models] [--model separate] [--name separate]

Uses the test scenes that bench_models.py builds (run it first). Each mixture of
a target and a competing talker goes through the blind model as ``avse.api.Separator``
runs it without video (chunked, the outputs on the input's scale), before its one-voice
rule; its two outputs are paired with the two voices in the order
that gives the higher mean SI-SDR (the output order of a blind model is
arbitrary), and the SI-SDR improvement of each voice is reported; ``one_voice`` counts the
mixtures where ``avse separate`` would give one output the whole input (the other 20 dB or
more under it, ``avse.api.ONE_VOICE_BLIND_DB``). Writes
bench/results/NAME.json (default separate.json).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="data/models")
    p.add_argument("--model", default="separate", help="a shipped name or a checkpoint path")
    p.add_argument("--name", default="separate", help="results name: bench/results/NAME.json")
    args = p.parse_args()
    from avse.api import ONE_VOICE_BLIND_DB, Separator, output_levels_db
    from avse.audio.io import load_audio
    from avse.data.metadata import load_scenes, scenes_dir, scenes_path
    from avse.evaluation.metrics import si_sdr

    root = Path(args.root)
    folder = scenes_dir(root, "test")
    sep = Separator.from_pretrained(args.model, av=None)
    gains = []
    one_voice = 0
    for s in load_scenes(scenes_path(root, "test")):
        if s["interferer"]["type"] != "speech":
            continue
        mix, tgt, itf = (load_audio(folder / f"{s['scene']}_{k}.wav", 16000)[0] for k in ("mixed", "target", "interferer"))
        est = sep.blind_outputs(mix)[0][:, : len(mix)]  # [2, T]
        refs = (tgt, itf)
        one_voice += int(min(output_levels_db(est, mix)) <= ONE_VOICE_BLIND_DB)
        pairs = [[si_sdr(est[i], refs[j]) for j in range(2)] for i in range(2)]  # [output][voice]
        order = (0, 1) if pairs[0][0] + pairs[1][1] >= pairs[0][1] + pairs[1][0] else (1, 0)
        gains.append([pairs[order[j]][j] - si_sdr(mix, refs[j]) for j in range(2)])
    g = np.asarray(gains)  # [N, 2]: target, competing talker
    result = {
        "model": args.model,
        "scenes": len(g),
        "mean_si_sdri_db": float(g.mean()),
        "mean_si_sdri_target_db": float(g[:, 0].mean()),
        "mean_si_sdri_competing_db": float(g[:, 1].mean()),
        "share_both_improved": float(np.mean(np.all(g > 0, axis=1))),
        "one_voice": one_voice,
    }
    save(args.name, result)


if __name__ == "__main__":
    main()
