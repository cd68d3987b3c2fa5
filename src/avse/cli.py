"""The ``avse`` command: argument parsing only; the work is done by the library."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import NoReturn

from avse import __version__
from avse.config import (
    ASSIGN_MODES,
    ATTEN_LIM_DB,
    DEFAULT_SHIFTS,
    POSTFILTER,
    SYNTH_PRESETS,
    check_atten_lim,
    check_postfilter,
    check_shifts,
)
from avse.errors import AvseError, ConfigError


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
    from avse.data.tts.mbrola import MBROLA_ENV

    values: dict[str, object] = {"seed": args.seed}
    if args.engines:
        values["engines"] = tuple(args.engines)
    if args.mbrola:
        if "mbrola" not in (args.engines or ()):
            raise AvseError("--mbrola DIR needs --engines mbrola (and any others)")
        os.environ[MBROLA_ENV] = str(Path(args.mbrola).resolve())
    if args.noise_dir:
        values["noise_dirs"] = tuple(str(Path(p).resolve()) for p in args.noise_dir)
    if args.real_speech:
        values["real_speech"] = str(Path(args.real_speech).resolve())
        values["real_dev_speakers"] = tuple(args.real_dev_speaker or ())
        values["real_test_speakers"] = tuple(args.real_test_speaker or ())
        if args.real_fraction is not None:
            values["real_fraction"] = args.real_fraction
        if args.real_split is not None:
            values["real_split_fractions"] = tuple(args.real_split)
        values["real_masker_reuse"] = bool(args.real_masker_reuse)
        values["real_targets_by_speaker"] = bool(args.real_targets_by_speaker)
    elif ((args.real_fraction, args.real_split) != (None, None) or args.real_dev_speaker or args.real_test_speaker
          or args.real_masker_reuse or args.real_targets_by_speaker):
        raise AvseError("--real-fraction, --real-split, --real-masker-reuse, --real-targets-by-speaker, --real-dev-speaker "
                        "and --real-test-speaker need --real-speech DIR")
    cfg = synth_config(args.preset, **values)
    summary = synthesize_corpus(args.root, cfg, jobs=args.jobs, progress=not args.quiet)
    print(json.dumps(summary, indent=2))


def _cmd_import_speech(args: argparse.Namespace) -> None:
    import warnings

    from avse.data.realspeech import import_speech

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = import_speech(args.src, args.out, languages=tuple(args.language) if args.language else None,
                                do_align=not args.no_align, jobs=args.jobs, progress=not args.quiet, recognise=args.recognise)
    print(json.dumps({k: v for k, v in summary.items() if k != "speakers"}, indent=2))
    print(f"written: {Path(args.out) / 'speech.json'} ({summary['imported']} recordings, {len(summary['speakers'])} speakers)")
    for w in caught:
        print(f"avse: warning: {w.message}", file=sys.stderr)


def _cmd_add_maskers(args: argparse.Namespace) -> None:
    from avse.data.merge import add_masker_speech

    summary = add_masker_speech(args.src, args.dst, args.speaker, dataset=args.dataset)
    print(f"{args.dst}: {summary['added']} masker recordings of {summary['speakers']} speakers added from {args.src}"
          f" ({args.dataset}; {summary['skipped']} already there)")


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
    from avse.data.render import render_scenes
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


def _face(text: str) -> int | tuple[float, float, float, float]:
    try:
        if "," in text:
            x0, y0, x1, y1 = (float(v) for v in text.split(","))
            return (x0, y0, x1, y1)
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a face index or a box x0,y0,x1,y1, got {text!r}") from None


def _cmd_frontend(args: argparse.Namespace) -> None:
    from avse.video.frontend import run_frontend

    report = run_frontend(args.video, args.out, choose=args.face, smooth_window=args.smooth)
    print(json.dumps(report, indent=2))


def _cmd_prepare(args: argparse.Namespace) -> None:
    from avse.data.prepare import prepare
    from avse.utils.fs import parse_shard

    report = prepare(args.root, args.out, jobs=args.jobs, shard=parse_shard(args.shard), smooth_window=args.smooth, progress=not args.quiet,
                     detect=args.detect, faces=args.faces, light_asd=args.light_asd)
    print(json.dumps(report, indent=2))
    if report["failed"]:
        raise AvseError(f"{len(report['failed'])} utterance(s) failed, the rest is cached; see {Path(args.out) / 'failures.json'}")


def _cmd_sync(args: argparse.Namespace) -> None:
    from avse.video.frontend import sync_video
    from avse.video.shift import check_shift_output, write_shifted

    if args.write:
        check_shift_output(args.video, args.write)  # before the front end's work, not after
    est = sync_video(args.video, method=args.method)
    if args.method == "expert":
        verdict = "reliable" if est.reliable else f"NOT reliable: LSE-C below {est.threshold:.2f} (little speech or lip motion, or not this talker's voice)"
        print(f"{args.video}: audio offset {est.offset_ms:+.0f} ms (positive: audio late; 40 ms steps), "
              f"LSE-D {-float(est.corr_curve.max()):.3f}, LSE-C {est.confidence:.3f}, {verdict}")
    else:
        verdict = (
            "reliable"
            if est.reliable
            else f"NOT reliable: needs {est.threshold:.2f} for a clip this long (short clips and little lip motion score low)"
        )
        print(f"{args.video}: audio offset {est.offset_ms:+.0f} ms (positive: audio late), confidence {est.confidence:.2f}, {verdict}")
    if args.write:
        write_shifted(args.video, est.offset_ms, args.write)
        print(f"corrected file: {args.write}")


def _cmd_evaluate(args: argparse.Namespace) -> None:
    from avse.evaluation.run import evaluate

    summary = evaluate(args.root, args.dataset, args.method, args.out, jobs=args.jobs, progress=not args.quiet,
                       dnsmos=args.dnsmos)
    print(json.dumps(summary["all"], indent=2))
    print(f"written: {Path(args.out) / 'items.csv'}, summary.json, hist.png, improvement_vs_snr.png")


def _cmd_score(args: argparse.Namespace) -> None:
    import numpy as np

    from avse.audio.io import load_audio
    from avse.evaluation.dnsmos import Dnsmos

    model = Dnsmos(args.dnsmos)
    names = ("SIG", "BAK", "OVRL") + (("P808",) if model.has_p808 else ())
    rows = []
    print("file\t" + "\t".join(names))
    for path in args.files:
        audio, sr = load_audio(path)
        score = model.score(audio, sr).as_dict()
        rows.append({"file": str(path), **{k: round(score[k], 3) for k in names}})
        print(f"{path}\t" + "\t".join(f"{score[k]:.2f}" for k in names), flush=True)
    if len(rows) > 1:
        print("mean\t" + "\t".join(f"{np.mean([r[k] for r in rows]):.2f}" for k in names))
    if args.json:
        from avse.utils.fs import write_json

        write_json(args.json, {"scores": rows, "model_dir": str(args.dnsmos)})


def _cmd_train(args: argparse.Namespace) -> None:
    from avse.training.recipe import load_recipe

    cfg = load_recipe(args.recipe, args.set)
    if cfg.get("model") == "talking_face":
        from avse.talking.train import fit_talking

        print(f"generator: {fit_talking(cfg, args.out, resume=args.resume, progress=not args.quiet)}")
        return
    if cfg.get("model") == "sync_expert":
        from avse.talking.expert_data import train_expert

        print(f"lip-sync expert: {train_expert(cfg, Path(args.out), resume=args.resume, progress=not args.quiet)}")
        return
    if cfg.get("model") == "overlap_detector":
        from avse.training.overlap import train_overlap

        print(f"overlap detector: {train_overlap(cfg, Path(args.out), resume=args.resume, progress=not args.quiet)}")
        return
    if cfg.get("model") == "speaker_encoder":
        from avse.training.speaker import train_speaker

        print(f"speaker encoder: {train_speaker(cfg, Path(args.out), resume=args.resume, progress=not args.quiet)}")
        return
    from avse.training.module import fit

    best = fit(cfg, args.out, resume=args.resume, progress=not args.quiet)
    print(f"best checkpoint: {best}")


def _cmd_talk(args: argparse.Namespace) -> None:
    from avse.talking.generate import TalkingFace

    report = TalkingFace.from_pretrained(args.model).run(args.face, args.speech, args.out, progress=not args.quiet)
    print(f"{report['output']}: {report['frames']} frames in {report['seconds']} s ({report['ms_per_frame']} ms a frame)")


def _talking_info(path: Path) -> dict | None:
    """A talking-face generator's, lip-sync expert's, overlap detector's or speaker encoder's description, or None for
    any other file."""
    from avse.models.checkpoint import read_checkpoint

    try:
        ckpt = read_checkpoint(path)
    except AvseError:  # not ours to judge here: model_summary reports it
        return None
    if ckpt["model"] not in ("talking_face", "sync_expert", "overlap_detector", "speaker_encoder"):
        return None
    weights = sum(v.numel() for v in ckpt.get("state_dict", {}).values() if v.is_floating_point())
    return {"model": ckpt["model"], "parameters": weights, "config": ckpt.get("config"),
            "versions": ckpt.get("versions"), "extra": ckpt.get("extra")}


def _cmd_info(args: argparse.Namespace) -> None:
    from avse.api import model_path
    from avse.training.recipe import model_summary

    path = Path(args.checkpoint)
    if path.is_file():
        talking = _talking_info(path)
        if talking is not None:
            what = {"talking_face": "talking-face generator (avse talk)", "sync_expert": "lip-sync expert",
                    "overlap_detector": "overlapped speech detector (avse separate's one-voice check)",
                    "speaker_encoder": "speaker encoder (Separator(speaker=...): one voice or two)"}[talking["model"]]
            print(f"{args.checkpoint}: {talking['model']}, {talking['parameters'] / 1e6:.2f} M parameters; {what}")
            print(json.dumps(talking, indent=2, default=str))
            return
    info = model_summary(model_path(args.checkpoint))
    face = info["interface"]
    kind = f"audio-visual ({face['visual_channels']} visual channels)" if face["visual_channels"] else "audio-only"
    timing = "non-causal"
    if face["causal"] and face["lookahead"] is not None:
        timing = f"causal, {1000.0 * face['lookahead'] / face['sample_rate']:.3g} ms look-ahead"
        if face["video_lookahead"]:
            timing += f" (+{face['video_lookahead']} video frame)"
    print(f"{args.checkpoint}: {info['model']}, {info['parameters'] / 1e6:.2f} M parameters, "
          f"{info['macs_per_second'] / 1e9:.2f} GMAC per second of audio; {kind}, "
          f"{face['n_outputs']} output(s), {timing}")
    if face["causal"]:  # a streaming model: what avse.streaming.StreamingEnhancer(...).describe() says
        from avse.streaming.live import streaming_description

        described = streaming_description(args.checkpoint)
        if described is not None:
            info = {**info, "streaming": described}
    print(json.dumps(info, indent=2, default=str))


def _shifts(text: str) -> int:
    try:
        return check_shifts(int(text))
    except (ValueError, ConfigError):
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 up, got {text!r}") from None


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _atten_lim(text: str) -> float:
    """--atten-lim: a number of dB >= 0 (0: no limit)."""
    try:
        check_atten_lim(float(text))
    except (ValueError, ConfigError):
        raise argparse.ArgumentTypeError(f"expected a number of dB >= 0 (0: no limit), got {text!r}") from None
    return float(text)


def _strength(text: str) -> float:
    """--postfilter: a strength >= 0 (0: none)."""
    try:
        check_postfilter(float(text))
    except (ValueError, ConfigError):
        raise argparse.ArgumentTypeError(f"expected a strength >= 0 (0: no post-filter), got {text!r}") from None
    return float(text)


def _cmd_enhance(args: argparse.Namespace) -> None:
    from avse.api import enhance_file, talker_source

    res = enhance_file(args.input, args.out, audio=args.audio, model=args.model, face=args.face,
                       chunk_seconds=args.chunk, progress=not args.quiet, light_asd=args.light_asd,
                       atten_lim_db=args.atten_lim, postfilter=args.postfilter, assign=args.assign,
                       separator=args.separator, shifts=args.shifts)
    if res["mode"] == "audio-visual":
        rule = res.get("face", {}).get("choice")
        face = {"only": "the only face", "largest": "the largest face", "audio": "the face whose lips follow the sound",
                "index": f"face {args.face}", "box": "the face in the box"}.get(rule, "the given face")
        how = f"audio-visual with model {res['model']!r}, lips of {face}"
    else:
        how = f"AUDIO-ONLY with model {res['model']!r}: {res['reason']}"
    seconds = res["seconds_frontend"] + res["seconds_model"]
    print(f"enhanced {res['seconds']:.1f} s {how}; {res['chunks']} chunk(s) in {seconds:.1f} s")
    talker = res.get("talker")
    if talker is not None:
        print(f"the talker's voice from {talker_source(talker)}")
    faces = res.get("face", {}).get("n_faces", 1)
    if faces > 1:
        print(f"note: {faces} faces in the video; when more than one talks, avse separate gives each face its own voice "
              "by lip sync")
    print("written: " + ", ".join(res["outputs"]))


def _cmd_separate(args: argparse.Namespace) -> None:
    from avse.api import levels_line, separate_file, talker_source

    av = None if args.av_model == "none" else args.av_model
    res = separate_file(args.input, args.out, model=args.model, av=av, chunk_seconds=args.chunk, progress=not args.quiet,
                        assign=args.assign, overlap=not args.no_overlap_check, shifts=args.shifts)
    why = f" ({res['reason']})" if res["reason"] else ""
    print(f"separated {res['seconds']:.1f} s into {len(res['names'])} voice(s), {res['mode']} with model "
          f"{res['model']!r}{why}: {', '.join(res['names'])}")
    if "assignment" in res:
        a = res["assignment"]
        if len(a.get("turns", [])) > 1:  # the pairing changes: the whole clip's is not what was written
            print("lip sync (LSE-C of each face with each output, whole clip): " + "; ".join(
                f"{n} ({', '.join(f'{c:.3f}' for c in row)})" for n, row in zip(res["names"], a["lse_c"])))
            print("turns: " + "; ".join(f"from {t['start_s']:.1f} s " + ", ".join(f"{n} <- source{k}" for n, k in zip(res["names"], t["sources"]))
                                        for t in a["turns"]))
        else:
            print("lip sync (LSE-C of each face with each output): " + "; ".join(
                f"{n} <- source{k} ({', '.join(f'{c:.3f}' for c in row)})" for n, k, row in zip(res["names"], a["sources"], a["lse_c"])))
        if a.get("one_voice"):
            print(f"one voice: {a['one_voice']} talks and gets the whole input (the other face shows no sync with the "
                  "quieter output)")
    elif res.get("talker"):  # one face: the check of avse enhance for a second voice
        print(f"one face: its voice from {talker_source(res['talker'])}")
    elif res.get("assign_reason"):
        print(f"one pass of the audio-visual model per face ({res['assign_reason']})")
    if res.get("one_voice") and "assignment" not in res:
        from avse.api import one_voice_line

        print(f"one voice: {one_voice_line(res)}")
    print("levels against the input: " + levels_line(res["names"], res["levels_db"]))
    print("written: " + ", ".join(res["outputs"]))


def _cmd_live(args: argparse.Namespace) -> None:
    from avse.streaming.live import run_live

    run_live(args.model, jack=args.device is None, device=args.device, camera=args.camera, record=args.record,
             block=args.block, backend=args.backend, seconds=args.seconds, headroom_ms=args.headroom, connect=not args.no_connect,
             idle_poll=not args.no_idle_poll, preview=args.preview, atten_lim_db=args.atten_lim)


def _cmd_ui(args: argparse.Namespace) -> None:
    from avse.web import UiConfig, serve

    serve(UiConfig(host=args.host, port=args.port, max_upload_mb=args.max_upload_mb, max_seconds=args.max_seconds,
                   share=args.share, dnsmos=args.dnsmos, examples=args.examples))


def _cmd_demo(args: argparse.Namespace) -> None:
    from avse.demo import run_demo

    run_demo(args.out, jobs=args.jobs, model=args.model, **({} if args.seed is None else {"seed": args.seed}))


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit code 2), like every other avse error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see: {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``avse`` command."""
    p = _Parser(prog="avse", description="Audio-visual speech enhancement and separation toolkit.")
    p.add_argument("--version", action="version", version=f"avse {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    d = sub.add_parser("demo", help="noisy talking-face videos -> the shipped model -> metrics and a before/after report")
    d.add_argument("--out", default="avse_demo", help="output folder (default: %(default)s)")
    d.add_argument("--jobs", type=int, default=_jobs_default(), help="worker processes (default: %(default)s)")
    d.add_argument("--seed", type=int, default=None, help="corpus seed (default: one whose speakers the shipped models never heard)")
    d.add_argument("--model", default="av", help="shipped model name or checkpoint path (default: %(default)s)")
    d.set_defaults(func=_cmd_demo)

    s = sub.add_parser("synth", help="synthesize an audio-visual corpus (TTS voices + talking faces + noises)")
    s.add_argument("root", help="output corpus folder (AVSE layout)")
    s.add_argument("--preset", default="default", choices=sorted(SYNTH_PRESETS), help="corpus size (default: %(default)s)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--jobs", type=int, default=_jobs_default(), help="worker processes (default: %(default)s)")
    s.add_argument("--noise-dir", action="append", metavar="PATH", help="real noise files or folders to add (repeatable)")
    s.add_argument("--real-speech", metavar="DIR", help="real voices imported by `avse import-speech`: targets (faces drawn "
                                                       "from their aligned phones) and maskers, speakers disjoint across splits")
    s.add_argument("--real-fraction", type=float, metavar="F",
                   help="share of every split's targets and maskers that are real recordings, in [0, 1) (default: 0.5)")
    s.add_argument("--real-split", type=float, nargs=3, metavar=("TRAIN", "DEV", "TEST"),
                   help="shares of the real speakers' recorded seconds for train, dev and test (default: 0.6 0.2 0.2; "
                        "1 0 0 puts every real voice in train, for a model judged on other real recordings)")
    s.add_argument("--real-masker-reuse", action="store_true",
                   help="real maskers also chain recordings that are targets, so that every real speaker is a masker "
                        "as often as any other (default: only the recordings that are not targets)")
    s.add_argument("--real-targets-by-speaker", action="store_true",
                   help="real targets drawn one speaker at a time in turn, so that every voice is a target about as "
                        "often (default: recordings drawn at random, most of them from the speakers with most recordings)")
    s.add_argument("--real-dev-speaker", action="append", metavar="NAME", help="put this real speaker in dev (repeatable)")
    s.add_argument("--real-test-speaker", action="append", metavar="NAME", help="put this real speaker in test (repeatable)")
    s.add_argument("--engines", nargs="+", choices=("espeak", "flite", "festival", "mbrola"), metavar="ENGINE",
                   help="TTS engines of the corpus's voices (default: espeak, flite and festival, those installed); "
                        "with mbrola, every other speaker is an MBROLA voice, a recorded speaker's diphones")
    s.add_argument("--mbrola", metavar="DIR", help="the folder scripts/fetch_mbrola filled (default: $AVSE_MBROLA, else data/mbrola)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_synth)

    im = sub.add_parser("import-speech", help="import real recordings (fillets-ng, asterisk, word games, game talkies, or a folder) as 16 kHz wavs with aligned phones")
    im.add_argument("src", help="scripts/fetch_real_speech's folder (fillets-ng, asterisk prompts, word games, the talkies "
                                "of --games) or a folder of "
                                "recordings (wav/flac/ogg; speaker = parent folder; transcript = same-name .txt)")
    im.add_argument("out", help="output folder: wav/ID.wav and speech.json")
    im.add_argument("--language", action="append", metavar="LANG",
                    help="espeak-ng language: which fillets-ng/asterisk languages to import (repeatable; default all), "
                         "or the language of a folder of recordings (default en-us)")
    im.add_argument("--no-align", action="store_true", help="no phone timings (faster; recordings are then maskers only)")
    im.add_argument("--recognise", nargs="?", const="english", choices=("english", "all"), metavar="english|all",
                    help="untranscribed recordings get phone timings recognised by PocketSphinx, so that they can be "
                         "targets too (about 0.04 s per second of speech): English ones (the default), or 'all' "
                         "languages, heard as English (their lips follow the speech less closely); put it after SRC OUT")
    im.add_argument("--jobs", type=int, default=_jobs_default(), help="worker processes (default: %(default)s)")
    im.add_argument("--quiet", action="store_true", help="no progress bar")
    im.set_defaults(func=_cmd_import_speech)

    am = sub.add_parser("add-maskers", help="add another corpus's masker speech (of some speakers) to a corpus")
    am.add_argument("src", help="the corpus to take the masker speech from")
    am.add_argument("dst", help="the corpus to add it to (hard links; its masker list is rewritten atomically)")
    am.add_argument("--speaker", action="append", required=True, metavar="PATTERN",
                    help="speakers to take, a glob pattern such as 'queen-*' (repeatable)")
    am.add_argument("--dataset", default="train", help="the split (default: %(default)s)")
    am.set_defaults(func=_cmd_add_maskers)

    f = sub.add_parser("frontend", help="run the video front end on one video: landmarks, mouth crops, features, sync")
    f.add_argument("video")
    f.add_argument("--out", required=True, help="output folder (landmarks.npz, crops.npz, crops.png, report.json)")
    f.add_argument("--face", type=_face, help="which face: an index (left to right) or a box x0,y0,x1,y1 (default: the talker)")
    f.add_argument("--smooth", type=int, help="landmark smoothing window in frames (odd; 1 = none)")
    f.set_defaults(func=_cmd_frontend)

    pr = sub.add_parser("prepare", help="build the preprocessing cache (mouth crops, lip features, audio) of a corpus")
    pr.add_argument("root", help="an AVSE-layout corpus or an LRS3-style tree (pretrain|trainval|test/SPEAKER/ID.mp4)")
    pr.add_argument("out", help="cache folder")
    pr.add_argument("--jobs", type=int, default=_jobs_default())
    pr.add_argument("--shard", metavar="i/N", help="process only utterances with index %% N == i")
    pr.add_argument("--smooth", type=int, help="landmark smoothing window for detected faces")
    pr.add_argument("--detect", action="store_true",
                    help="detect faces even where the corpus has ground-truth landmarks (train on the front end's lips)")
    pr.add_argument("--faces", action="store_true",
                    help="also store aligned 96x96 RGB face crops (the talking-face models' frames)")
    pr.add_argument("--light-asd", metavar="FILE",
                    help="also store the embeddings of this Light-ASD checkpoint's visual encoder (for models on them)")
    pr.add_argument("--quiet", action="store_true", help="no progress bar")
    pr.set_defaults(func=_cmd_prepare)

    sy = sub.add_parser("sync", help="estimate the audio/video offset of a talking-face video (lip motion, or the lip-sync expert)")
    sy.add_argument("video")
    sy.add_argument("--write", metavar="OUT", help="write a corrected copy (video stream copied, audio shifted)")
    sy.add_argument("--method", choices=["lips", "expert"], default="lips",
                    help="lips: lip motion vs. speech energy (10 ms steps, default); expert: the lip-sync expert on "
                         "aligned face crops (40 ms steps, LSE-D / LSE-C as confidence)")
    sy.set_defaults(func=_cmd_sync)

    ev = sub.add_parser("evaluate", help="score a method on rendered scenes: per-item CSV, summary with 95%% CIs, plots")
    ev.add_argument("root")
    ev.add_argument("--dataset", default="test", choices=["train", "dev", "test"])
    ev.add_argument("--model", "--method", dest="method", required=True, metavar="MODEL",
                    help="a baseline (unprocessed, oracle-irm, oracle-ibm, noisereduce), a shipped model "
                         "(av, av-causal, audio) or a checkpoint path (*.avse.pt)")
    ev.add_argument("--out", required=True, help="output folder")
    ev.add_argument("--jobs", type=int, default=_jobs_default())
    ev.add_argument("--quiet", action="store_true", help="no progress bar")
    ev.add_argument("--dnsmos", metavar="DIR", help="folder with the DNSMOS ONNX models: adds no-reference "
                                                      "P.835/P.808 scores of the output and the input")
    ev.set_defaults(func=_cmd_evaluate)

    sc = sub.add_parser("score", help="no-reference quality of recordings: DNSMOS P.835 (SIG, BAK, OVRL) and P.808")
    sc.add_argument("files", nargs="+", help="audio or video files (any format; resampled to 16 kHz mono)")
    sc.add_argument("--dnsmos", required=True, metavar="DIR",
                    help="folder with sig_bak_ovr.onnx (and model_v8.onnx for P.808), from the DNS Challenge's DNSMOS")
    sc.add_argument("--json", metavar="FILE", help="also write the scores as JSON")
    sc.set_defaults(func=_cmd_score)

    tr = sub.add_parser("train", help="train a model from a YAML recipe (configs/*.yaml)")
    tr.add_argument("recipe", help="a recipe, e.g. configs/extract.yaml")
    tr.add_argument("--out", required=True, help="run folder: checkpoints (.ckpt and .avse.pt) and TensorBoard logs")
    tr.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override an option, e.g. data.root=data/synth (repeatable)")
    tr.add_argument("--resume", action="store_true", help="continue from OUT/last.ckpt")
    tr.add_argument("--quiet", action="store_true", help="no progress bar")
    tr.set_defaults(func=_cmd_train)

    tk = sub.add_parser("talk", help="animate a face (image or video) with speech: a lip-synced talking-face video")
    tk.add_argument("face", help="an image (jpg, png) or a video of one face")
    tk.add_argument("speech", help="the speech: an audio file, or a video whose sound is used")
    tk.add_argument("-o", "--out", required=True, help="output video (mp4)")
    tk.add_argument("--model", help="a talking-face checkpoint (default: the shipped one)")
    tk.add_argument("--quiet", action="store_true", help="no progress bar")
    tk.set_defaults(func=_cmd_talk)

    inf = sub.add_parser("info", help="describe a checkpoint: model, config, parameters, MACs")
    inf.add_argument("checkpoint")
    inf.set_defaults(func=_cmd_info)

    lv = sub.add_parser("live", help="enhance a live microphone (JACK or PortAudio) with a camera's lips, in real time")
    lv.add_argument("--model", default="av-causal", help="a causal model: shipped name or checkpoint path (default: %(default)s)")
    io = lv.add_mutually_exclusive_group()
    io.add_argument("--jack", action="store_true", help="a JACK client with ports avse:in and avse:out (the default)")
    io.add_argument("--device", type=lambda t: int(t) if t.isdigit() else t, metavar="N",
                    help="a PortAudio device (number or name; `python -m sounddevice` lists them) instead of JACK")
    lv.add_argument("--camera", type=lambda t: int(t) if t.isdigit() else t, metavar="0|FILE",
                    help="a camera number or a video file played as a camera (default: none, audio-only input)")
    lv.add_argument("--record", metavar="OUT.wav|OUT.mp4",
                    help="when stopped, write the enhanced audio here (a .wav), or the camera's video with the enhanced audio in sync "
                         "(.mp4, .m4v, .mkv or .mov; needs --camera)")
    lv.add_argument("--preview", action="store_true",
                    help="show a window with the camera frame, the face box, its lip points and a mouth crop (needs --camera and a display)")
    lv.add_argument("--block", type=int, default=640, choices=[160, 320, 640], help="model block in samples at 16 kHz (default: %(default)s)")
    lv.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx"], help="step backend (default: %(default)s, the faster here)")
    lv.add_argument("--headroom", type=float, default=20.0, metavar="MS", help="extra output buffer for the model's time per block (default: %(default)s)")
    lv.add_argument("--seconds", type=_positive_seconds, help="stop after this long (default: run until Ctrl-C)")
    lv.add_argument("--no-connect", action="store_true", help="JACK: do not connect to the sound card's ports")
    lv.add_argument("--no-idle-poll", action="store_true",
                    help="let idle cores halt (saves power; by default, where allowed, they poll while avse live runs: a block costs less)")
    lv.add_argument("--atten-lim", type=_atten_lim, default=ATTEN_LIM_DB, metavar="DB",
                    help="never turn the input down by more than DB (as for avse enhance; default: %(default)g, 0: no limit)")
    lv.set_defaults(func=_cmd_live)

    ui = sub.add_parser("ui", help="the browser UI: upload, check the face, enhance or separate, listen, download")
    ui.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s, this machine only)")
    ui.add_argument("--port", type=int, default=7860, help="port (default: %(default)s)")
    ui.add_argument("--max-upload-mb", type=float, default=200.0, metavar="N", help="largest upload in MB (default: 200)")
    ui.add_argument("--max-seconds", type=float, default=300.0, metavar="S", help="longest upload in seconds (default: 300)")
    ui.add_argument("--share", action="store_true", help="also make a public link through Gradio's share servers (off by default)")
    ui.add_argument("--dnsmos", metavar="DIR", help="folder with the DNSMOS ONNX models: DNSMOS of the input and the output")
    ui.add_argument("--examples", metavar="DIR", help="offer this folder's .mp4 files as demo clips (default: ./avse_demo's noisy videos when avse demo made them)")
    ui.set_defaults(func=_cmd_ui)

    en = sub.add_parser("enhance", help="enhance a talker: a video (lips + audio-visual model) or an audio file")
    en.add_argument("input", help="a video (front end + audio-visual model) or an audio file (audio-only model)")
    en.add_argument("-o", "--out", required=True, metavar="OUT.wav",
                    help="output wav (16-bit PCM, 16 kHz mono); a video input also gets OUT.mp4 (its video stream + the enhanced audio)")
    en.add_argument("--audio", metavar="WAV", help="use this audio instead of the video's own track (starting with its first frame)")
    en.add_argument("--model", default="av", help="a shipped model (av, av-causal, audio) or a checkpoint path (default: %(default)s)")
    en.add_argument("--face", type=_face, help="which face: an index (left to right) or a box x0,y0,x1,y1 (default: the talker)")
    en.add_argument("--chunk", type=_positive_seconds, metavar="SECONDS", help="chunk length for long inputs (default: 10)")
    en.add_argument("--light-asd", metavar="FILE",
                    help="a Light-ASD checkpoint, for a model trained on its embeddings (default: $AVSE_LIGHT_ASD)")
    en.add_argument("--atten-lim", type=_atten_lim, default=ATTEN_LIM_DB, metavar="DB",
                    help="never turn anything down by more than DB dB: the input is mixed back in at -DB dB "
                         "(default: %(default)g; 0: no limit, the model's output as it is)")
    en.add_argument("--postfilter", type=_strength, default=POSTFILTER, metavar="STRENGTH",
                    help="a Wiener post-filter on the model's output: turns down further the noise the model left where "
                         "it judged it mostly noise; larger is stronger (e.g. 2; default: %(default)s; 0: none)")
    en.add_argument("--assign", choices=ASSIGN_MODES, default="auto",
                    help="whose output the talker's voice is: the audio-visual model's (av), the blind two-talker "
                         "model's output that the lips follow (sync), or that output only when a second voice that is not "
                         "the face's is heard talking at once with it (auto, the default)")
    en.add_argument("--separator", default="separate", metavar="MODEL",
                    help="the blind two-talker model of --assign: a shipped name or a checkpoint path (default: %(default)s)")
    en.add_argument("--shifts", type=_shifts, default=DEFAULT_SHIFTS, metavar="N",
                    help="run the models (the audio-visual or audio-only one, and the blind one of --assign) N times on "
                         "the input shifted by about 63 ms more each time and average: a little better, N times the "
                         "models' cost (default: %(default)s; 1: one run, the fastest)")
    en.add_argument("--quiet", action="store_true", help="no progress bar")
    en.set_defaults(func=_cmd_enhance)

    se = sub.add_parser("separate", help="separate voices: one per tracked face in a video, else a blind model's two")
    se.add_argument("input", help="a video or an audio file")
    se.add_argument("-o", "--out", required=True, metavar="OUTDIR",
                    help="output folder: face0.wav, face1.wav, ... (+ .mp4 for a video) or source0.wav, source1.wav")
    se.add_argument("--model", default="separate", help="blind separation model: a shipped name or a checkpoint path (default: %(default)s)")
    se.add_argument("--av-model", default="av", help="audio-visual model run once per face; 'none' to ignore faces (default: %(default)s)")
    se.add_argument("--assign", choices=ASSIGN_MODES, default="auto",
                    help="how faces get their voices: the blind model's outputs by lip sync, window by window so "
                         "talkers who take turns keep their turns (sync), the audio-visual model once per face (av), or "
                         "sync when two or more faces are seen and the outputs hold two voices, and with one face the "
                         "blind output its lips follow only when a second voice is heard, as avse enhance does (auto, "
                         "the default)")
    se.add_argument("--chunk", type=_positive_seconds, metavar="SECONDS", help="chunk length for long inputs (default: 10)")
    se.add_argument("--no-overlap-check", action="store_true",
                    help="without faces, decide that the blind model heard one voice by level alone (no overlapped speech "
                         "detector): talkers who take turns are then kept apart down to 20 dB")
    se.add_argument("--shifts", type=_shifts, default=DEFAULT_SHIFTS, metavar="N",
                    help="run the models (the blind one, and the audio-visual one per face) N times on the input shifted "
                         "by about 63 ms more each time and average: a little better, N times the models' cost "
                         "(default: %(default)s; 1: one run, the fastest)")
    se.add_argument("--quiet", action="store_true", help="no progress bar")
    se.set_defaults(func=_cmd_separate)

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


def _system_error(err: Exception) -> str | None:
    """One line for an error of the system rather than of avse (no permission, a full disk,
    a path through a file): ``FILE: reason``; None for any other error, which stays a traceback."""
    if isinstance(err, OSError):
        reason = err.strerror or str(err).strip() or type(err).__name__
        files = [str(f) for f in (err.filename, err.filename2) if f is not None]
        line = f"{' -> '.join(files)}: {reason}" if files else reason
    else:
        sf = sys.modules.get("soundfile")  # not imported: the error cannot be one of its own
        if sf is None or not isinstance(err, sf.LibsndfileError):
            return None
        line = str(err).strip() or type(err).__name__
    return " ".join(line.split())


def main(argv: list[str] | None = None) -> int:
    """Run the ``avse`` command; returns the process exit code.

    0 on success, 2 with one line ``avse: error: ...`` on stderr for an
    AvseError or a system error (OSError, libsndfile's), 130 when interrupted.
    """
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except AvseError as err:
        print(f"avse: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        resumable = args.func not in (_cmd_live, _cmd_ui)  # a live session or a server has nothing to resume
        print("avse: interrupted" + (" (re-run the same command to resume)" if resumable else ""), file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `avse info X | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as err:
        line = _system_error(err)
        if line is None:
            raise
        print(f"avse: error: {line}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
