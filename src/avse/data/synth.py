"""The synthetic audio-visual corpus: offline TTS voices, talking faces and noises in the AVSE layout."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from avse import SAMPLE_RATE, SAMPLES_PER_FRAME, VIDEO_FPS, __version__
from avse.audio.io import load_audio, save_wav
from avse.config import SPLITS, SynthConfig
from avse.data.metadata import (
    interferer_wav_path,
    load_speech_list,
    target_landmarks_path,
    target_speech_list_path,
    target_video_path,
    target_wav_path,
)
from avse.errors import ConfigError, MediaError, MetadataError
from avse.utils.fs import ensure_dir, write_json
from avse.utils.pool import remove_stale_parts, worker_pool
from avse.utils.seeding import item_seed

WORK_DIR = ".synth"  # per-item completion records, so that an interrupted run resumes
_ITEM_FOLDERS = ("targets", "targets_video", "targets_landmarks", "interferers/speech", "interferers/noise")


@dataclass(frozen=True)
class SpeechTask:
    """One utterance to make: a target (audio + face video + landmarks) or a masker (audio)."""

    id: str
    split: str
    role: str  # "target" | "masker"
    speaker: str
    voice: Any  # avse.data.tts.Voice
    face_seed: int
    text: str
    seed: int


@dataclass(frozen=True)
class NoiseTask:
    """One noise item to make: a generated class, or a segment of a real file."""

    id: str
    split: str
    cls: str
    n_samples: int
    seed: int


def _sentences(rng: np.random.Generator, count: int, grid_fraction: float) -> str:
    from avse.data.text import free_sentence, grid_sentence

    parts = [grid_sentence(rng) if rng.random() < grid_fraction else free_sentence(rng) for _ in range(count)]
    # Each sentence capitalised and ended, so that every engine pauses between them.
    return " ".join(p.rstrip(".")[:1].upper() + p.rstrip(".")[1:] + "." for p in parts)


def plan_speech(cfg: SynthConfig) -> list[SpeechTask]:
    """Every utterance of the corpus, fully determined by ``cfg`` (same config, same plan)."""
    from avse.data.tts import speaker_voices

    voices = speaker_voices(cfg.n_identities, cfg.seed)
    order = np.random.default_rng(cfg.seed).permutation(len(voices))
    tasks: list[SpeechTask] = []
    k = 0
    for split in SPLITS:
        n_target, n_masker = cfg.speakers(split)
        for role, count in (("target", n_target), ("masker", n_masker)):
            for _ in range(count):
                spk = f"spk{k + 1:03d}"
                voice = voices[int(order[k])]
                k += 1
                for u in range(cfg.utterances(split)):
                    uid = f"{spk}_{u + 1:03d}"
                    seed = item_seed(cfg.seed, uid)
                    rng = np.random.default_rng(seed)
                    n_sent = 1 if role == "target" else cfg.masker_sentences
                    text = _sentences(rng, n_sent, cfg.grid_fraction if role == "target" else 0.3)
                    tasks.append(SpeechTask(uid, split, role, spk, voice, item_seed(cfg.seed, spk), text, seed))
    return tasks


def plan_noise(cfg: SynthConfig) -> list[NoiseTask]:
    """Every generated noise item of the corpus, classes taken in turn."""
    from avse.data.noise import NOISE_CLASSES

    tasks = []
    n = int(round(cfg.noise_seconds * SAMPLE_RATE))
    for split in SPLITS:
        for i in range(cfg.noises(split)):
            cls = NOISE_CLASSES[i % len(NOISE_CLASSES)]
            nid = f"noise_{split}_{i + 1:04d}_{cls}"
            tasks.append(NoiseTask(nid, split, cls, n, item_seed(cfg.seed, nid)))
    return tasks


def _speech_paths(root: Path, task: SpeechTask) -> dict[str, Path]:
    if task.role == "target":
        return {
            "wav": target_wav_path(root, task.split, task.id),
            "video": target_video_path(root, task.split, task.id),
            "landmarks": target_landmarks_path(root, task.split, task.id),
        }
    return {"wav": interferer_wav_path(root, task.split, "speech", task.id)}


def make_speech(root: Path, task: SpeechTask, cfg: SynthConfig) -> dict[str, Any]:
    """Synthesize one utterance and write its files; returns its metadata-list entry."""
    from avse.data.tts import synthesize

    utt = synthesize(task.text, task.voice)
    audio = utt.audio
    n_frames = int(np.ceil(len(audio) / SAMPLES_PER_FRAME))
    paths = _speech_paths(root, task)
    save_wav(paths["wav"], audio)
    if task.role == "target":
        from avse.data.face import render_face, style_for_speaker
        from avse.data.visemes import lip_trajectory
        from avse.video.io import write_video
        from avse.video.landmarks import write_landmarks

        rng = np.random.default_rng(task.seed)
        traj = lip_trajectory(utt.phones, n_frames, fps=VIDEO_FPS, rng=rng)
        frames, landmarks = render_face(traj, style_for_speaker(task.face_seed), rng=rng)
        landmarks = dict(landmarks)
        landmarks["phone_symbols"] = np.array([p[0] for p in utt.phones])
        landmarks["phone_times"] = np.array([[p[1], p[2]] for p in utt.phones], dtype=np.float64).reshape(-1, 2)
        write_landmarks(paths["landmarks"], landmarks)
        crf = int(np.random.default_rng(task.face_seed).integers(cfg.video_crf[0], cfg.video_crf[1] + 1))
        write_video(paths["video"], frames, fps=VIDEO_FPS, audio=audio, crf=crf, preset=cfg.video_preset)
    return {
        "wavfile": task.id,
        "dataset": task.split,
        "nsamples": int(len(audio)),
        "speaker": task.speaker,
        "text": task.text,
        "engine": task.voice.engine,
        "voice": task.voice.id,
        "nframes": n_frames,
    }


def make_noise(root: Path, task: NoiseTask, voices: list[np.ndarray]) -> dict[str, Any]:
    """Generate one noise item and write it; returns its masker_noise_list entry."""
    from avse.data.noise import generate_noise

    rng = np.random.default_rng(task.seed)
    audio = generate_noise(task.cls, task.n_samples, rng, voices=voices)
    save_wav(interferer_wav_path(root, task.split, "noise", task.id), audio)
    return {"ID": task.id, "class": task.cls, "type": "noise", "dataset": task.split, "nsamples": int(len(audio))}


def _record_path(root: Path, item_id: str) -> Path:
    return root / WORK_DIR / f"{item_id}.json"


def _run_speech(args: tuple[str, SpeechTask, SynthConfig]) -> dict[str, Any]:
    root, task, cfg = Path(args[0]), args[1], args[2]
    entry = make_speech(root, task, cfg)
    write_json(_record_path(root, task.id), entry)
    return entry


_BABBLE_VOICES: dict[str, list[np.ndarray]] = {}


def _init_noise_worker(voices: dict[str, list[np.ndarray]]) -> None:
    global _BABBLE_VOICES
    _BABBLE_VOICES = voices


def _run_noise(args: tuple[str, NoiseTask]) -> dict[str, Any]:
    root, task = Path(args[0]), args[1]
    entry = make_noise(root, task, _BABBLE_VOICES.get(task.split, []))
    write_json(_record_path(root, task.id), entry)
    return entry


def _done(root: Path, item_id: str, outputs: list[Path]) -> dict[str, Any] | None:
    rec = _record_path(root, item_id)
    if rec.exists() and all(p.exists() for p in outputs):
        try:
            return json.loads(rec.read_text())
        except json.JSONDecodeError:
            return None
    return None


def _map(fn: Callable, items: list, jobs: int, desc: str, progress: bool, initializer=None, initargs=()) -> list:
    results = []
    bar = tqdm(total=len(items), desc=desc, unit="item", disable=not progress or not items, leave=False)
    try:
        if jobs <= 1 or len(items) <= 1:
            if initializer is not None:
                initializer(*initargs)
            for item in items:
                results.append(fn(item))
                bar.update()
        else:
            with worker_pool(min(jobs, len(items)), initializer, initargs) as pool:
                for res in pool.imap_unordered(fn, items):
                    results.append(res)
                    bar.update()
    finally:
        bar.close()
    return results


def _real_noise_files(cfg: SynthConfig) -> list[Path]:
    """The real noise files of ``cfg.noise_dirs``, each checked to decode (MediaError naming the first bad one)."""
    files: list[Path] = []
    for d in cfg.noise_dirs:
        p = Path(d)
        if not p.exists():
            raise MediaError(p, "no such noise file or folder")
        files += sorted(q for q in p.rglob("*") if q.is_file() and not q.name.startswith(".")) if p.is_dir() else [p]
    for f in files:
        load_audio(f)
    return files


def _make_real_noises(root: Path, cfg: SynthConfig, files: list[Path]) -> dict[str, dict[str, Any]]:
    """Cut real noise ``files`` into split-disjoint items under ``root``; returns their list entries."""
    from avse.data.noise import real_noise_segments

    entries: dict[str, dict[str, Any]] = {}
    for split, name, audio in real_noise_segments(files, dict(zip(SPLITS, cfg.real_noise_fractions)), cfg.noise_seconds):
        nid = f"real_{name}"
        path = interferer_wav_path(root, split, "noise", nid)
        if not path.exists():
            save_wav(path, audio)
        entries[nid] = {"ID": nid, "class": "real", "type": "noise", "dataset": split, "nsamples": int(len(audio))}
    return entries


def synthesize_corpus(root: str | Path, cfg: SynthConfig, jobs: int = 1, progress: bool = True) -> dict[str, Any]:
    """Make the synthetic corpus under ``root`` in the AVSE layout.

    Deterministic for ``cfg`` (same seed, same files); items already made by an
    earlier, interrupted run are kept. Writes the three metadata lists last.
    Returns a summary dict (counts per split and kind, seconds of speech).
    """
    if jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {jobs}")
    root = Path(root)
    cfg = replace(cfg, noise_dirs=tuple(str(Path(d).resolve()) for d in cfg.noise_dirs))
    noise_files = _real_noise_files(cfg)  # checked before anything is written
    speech = plan_speech(cfg)
    cfg_record = {
        "avse": __version__,
        "config": json.loads(json.dumps(asdict(cfg))),
        # the voice of every speaker: what TTS engines a machine has changes the plan
        "voices": {t.speaker: t.voice.id for t in speech},
    }
    cfg_path = root / "metadata" / "synth_config.json"
    if cfg_path.exists():
        try:
            old = json.loads(cfg_path.read_text())
        except json.JSONDecodeError:
            raise MetadataError(cfg_path, "not valid JSON; remove it only if this folder holds no corpus") from None
        if old.get("config") != cfg_record["config"]:
            raise ConfigError(f"{root}: holds a corpus made with another configuration; use a new folder")
        if old.get("voices") != cfg_record["voices"]:
            raise ConfigError(f"{root}: holds a corpus made with other TTS voices (other engines installed?); use a new folder")
    meta = ensure_dir(root / "metadata")
    for folder in [meta, root / WORK_DIR] + [root / s / sub for s in SPLITS for sub in _ITEM_FOLDERS]:
        if folder.is_dir():  # temp files an interrupted run left behind
            remove_stale_parts(folder)
    if not cfg_path.exists():
        write_json(cfg_path, cfg_record)
    real = _make_real_noises(root, cfg, noise_files)
    todo, entries = [], {}
    for t in speech:
        rec = _done(root, t.id, list(_speech_paths(root, t).values()))
        if rec is None:
            todo.append((str(root), t, cfg))
        else:
            entries[t.id] = rec
    for e in _map(_run_speech, todo, jobs, "speech", progress):
        entries[e["wavfile"]] = e

    # Babble needs voices: the masker speech of the same split.
    voices: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    for t in speech:
        if t.role == "masker":
            voices[t.split].append(load_audio(_speech_paths(root, t)["wav"])[0])
    noises = plan_noise(cfg)
    ntodo, noise_entries = [], {}
    for nt in noises:
        rec = _done(root, nt.id, [interferer_wav_path(root, nt.split, "noise", nt.id)])
        if rec is None:
            ntodo.append((str(root), nt))
        else:
            noise_entries[nt.id] = rec
    for e in _map(_run_noise, ntodo, jobs, "noise", progress, _init_noise_worker, (voices,)):
        noise_entries[e["ID"]] = e

    noise_order = [t.id for t in noises] + list(real)
    noise_entries.update(real)

    targets = [entries[t.id] for t in speech if t.role == "target"]
    maskers = [entries[t.id] for t in speech if t.role == "masker"]
    write_json(meta / "target_speech_list.json", targets)
    write_json(meta / "masker_speech_list.json", maskers)
    write_json(meta / "masker_noise_list.json", [noise_entries[i] for i in noise_order])
    summary: dict[str, Any] = {"root": str(root), "made_now": len(todo) + len(ntodo)}
    for split in SPLITS:
        summary[split] = {
            "targets": sum(e["dataset"] == split for e in targets),
            "maskers": sum(e["dataset"] == split for e in maskers),
            "noises": sum(e["dataset"] == split for e in noise_entries.values()),
            "target_speakers": len({e["speaker"] for e in targets if e["dataset"] == split}),
            "target_seconds": round(sum(e["nsamples"] for e in targets if e["dataset"] == split) / SAMPLE_RATE, 1),
        }
    return summary


def lip_speech_report(root: str | Path, split: str = "dev") -> dict[str, Any]:
    """Agreement of the written lip landmarks with the speech of each target utterance.

    For every target of ``split``: Pearson r between per-frame mouth opening
    (from the landmarks file) and per-frame speech energy (dB) at lag 0, and the
    lag (frames, within +-5) that maximises it. Returns ``{"ids", "corr" [U],
    "lag" [U], "mean_corr", "share_lag_ok"}`` where lag ok means |lag| <= 1.
    """
    from avse.video.landmarks import mouth_opening, read_landmarks
    from avse.video.sync import lip_speech_agreement

    root = Path(root)
    entries = [e for e in load_speech_list(target_speech_list_path(root)) if e["dataset"] == split]
    ids, corrs, lags = [], [], []
    for e in entries:
        audio, _ = load_audio(target_wav_path(root, split, e["wavfile"]))
        lips = read_landmarks(target_landmarks_path(root, split, e["wavfile"]))["lips"]
        r, best_lag = lip_speech_agreement(mouth_opening(lips), audio)
        ids.append(e["wavfile"])
        corrs.append(r)
        lags.append(best_lag)
    corr = np.array(corrs)
    lag = np.array(lags, dtype=int)
    return {
        "ids": ids,
        "corr": corr,
        "lag": lag,
        "mean_corr": float(corr.mean()) if len(corr) else float("nan"),
        "share_lag_ok": float(np.mean(np.abs(lag) <= 1)) if len(lag) else float("nan"),
    }
