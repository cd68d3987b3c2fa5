"""The ``avse`` command: argument parsing only; the work is done by the library."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from avse import __version__
from avse.errors import AvseError


def _jobs_default() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def _range(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH (e.g. -10,10), got {text!r}") from None
    return lo, hi


def _cmd_synth(args: argparse.Namespace) -> None:
    from avse.config import synth_config
    from avse.data.synth import synthesize_corpus

    values = {"seed": args.seed}
    if args.noise_dir:
        values["noise_dirs"] = tuple(str(Path(p).resolve()) for p in args.noise_dir)
    cfg = synth_config(args.preset, **values)
    summary = synthesize_corpus(args.root, cfg, jobs=args.jobs, progress=not args.quiet)
    print(json.dumps(summary, indent=2))


def _cmd_scenes_build(args: argparse.Namespace) -> None:
    from avse.data.scenes import build_scenes, write_scenes

    scenes = build_scenes(
        args.root,
        args.dataset,
        n_scenes=args.scenes,
        seed=args.seed,
        snr_speech=args.snr_speech,
        snr_noise=args.snr_noise,
        p_speech=args.p_speech,
        n_interferers=args.interferers,
    )
    path = write_scenes(args.root, args.dataset, scenes)
    n_speech = sum(s["interferer"]["type"] == "speech" for s in scenes)
    print(f"{path}: {len(scenes)} scenes ({n_speech} speech, {len(scenes) - n_speech} noise interferers)")


def _cmd_scenes_render(args: argparse.Namespace) -> None:
    from avse.data.scenes import render_scenes
    from avse.utils.fs import parse_shard

    summary = render_scenes(
        args.root,
        args.dataset,
        jobs=args.jobs,
        shard=parse_shard(args.shard),
        speech_weight=args.speech_weight,
        normalization=args.normalization,
        progress=not args.quiet,
    )
    print(json.dumps(summary, indent=2))


def _cmd_demo(args: argparse.Namespace) -> None:
    from avse.demo import run_demo

    run_demo(args.out, jobs=args.jobs, seed=args.seed)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit code 2), like every other avse error."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see: {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``avse`` command."""
    p = _Parser(prog="avse", description="Audio-visual speech enhancement and separation toolkit.")
    p.add_argument("--version", action="version", version=f"avse {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    d = sub.add_parser("demo", help="make a small corpus, render scenes, print a summary and write an overview PNG")
    d.add_argument("--out", default="avse_demo", help="output folder (default: %(default)s)")
    d.add_argument("--jobs", type=int, default=_jobs_default(), help="worker processes (default: %(default)s)")
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(func=_cmd_demo)

    s = sub.add_parser("synth", help="synthesize an audio-visual corpus (TTS voices + talking faces + noises)")
    s.add_argument("root", help="output corpus folder (AVSE layout)")
    s.add_argument("--preset", default="default", choices=["default", "demo", "tiny"], help="corpus size (default: %(default)s)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--jobs", type=int, default=_jobs_default(), help="worker processes (default: %(default)s)")
    s.add_argument("--noise-dir", action="append", metavar="PATH", help="real noise files or folders to add (repeatable)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_synth)

    sc = sub.add_parser("scenes", help="build and render AVSE scenes")
    scs = sc.add_subparsers(dest="scenes_command", required=True, metavar="ACTION")
    b = scs.add_parser("build", help="draw scenes (target, interferer, offset, SNR) into metadata/scenes.DATASET.json")
    b.add_argument("root")
    b.add_argument("--dataset", required=True, choices=["train", "dev", "test"])
    b.add_argument("--scenes", type=int, required=True, help="number of scenes")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--snr-speech", type=_range, default=(-15.0, 5.0), metavar="LO,HI", help="dB (default: -15,5)")
    b.add_argument("--snr-noise", type=_range, default=(-10.0, 10.0), metavar="LO,HI", help="dB (default: -10,10)")
    b.add_argument("--p-speech", type=float, default=0.5, help="share of speech interferers (default: %(default)s)")
    b.add_argument("--interferers", type=int, default=1, help="interferers per scene (default: %(default)s)")
    b.set_defaults(func=_cmd_scenes_build)
    r = scs.add_parser("render", help="render scenes to SXXXXX_{mixed,target,interferer}.wav + SXXXXX_silent.mp4")
    r.add_argument("root")
    r.add_argument("--dataset", required=True, choices=["train", "dev", "test"])
    r.add_argument("--jobs", type=int, default=_jobs_default())
    r.add_argument("--shard", metavar="i/N", help="render only scenes with index %% N == i")
    r.add_argument("--speech-weight", metavar="MAT", help="the challenge's speech_weight.mat: AVSE rendering math")
    r.add_argument("--normalization", default="avse", choices=["avse", "peak", "lufs"])
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=_cmd_scenes_render)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the ``avse`` command; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except AvseError as err:
        print(f"avse: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("avse: interrupted (re-run the same command to resume)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
