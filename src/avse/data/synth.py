"""The synthetic audio-visual corpus: offline TTS voices (and imported real ones), talking faces and noises in the AVSE layout."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, fields, replace
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
from avse.data.tts.process import scratch_dir
from avse.errors import ConfigError, MediaError, MetadataError
from avse.utils.fs import ensure_dir, write_json
from avse.utils.pool import remove_stale_parts, worker_pool
from avse.utils.seeding import item_seed

WORK_DIR = ".synth"  # per-item completion records, so that an interrupted run resumes
_ITEM_FOLDERS = ("targets", "targets_video", "targets_landmarks", "interferers/speech", "interferers/noise")


REAL_TARGET_MAX_S = 10.0  # longer real recordings are maskers only (few interferers would cover them)
REAL_GAP_S = 0.3  # silence between the recordings a real masker chains


@dataclass(frozen=True)
class RealSource:
    """The real recordings behind a SpeechTask: one for a target (with its aligned phones), several of one speaker chained for a masker."""

    ids: tuple[str, ...]  # ids in the import's speech.json
    wavs: tuple[str, ...]  # their wav paths
    language: str
    phones: tuple[tuple[str, float, float], ...] = ()  # the target's (symbol, start_s, end_s) over its recording


@dataclass(frozen=True)
class SpeechTask:
    """One utterance to make: a target (audio + face video + landmarks) or a masker (audio); TTS unless ``real`` is given."""

    id: str
    split: str
    role: str  # "target" | "masker"
    speaker: str
    voice: Any  # avse.data.tts.Voice; None for a real recording
    face_seed: int
    text: str
    seed: int
    real: RealSource | None = None


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

    voices = speaker_voices(cfg.n_identities, cfg.seed, cfg.engines or None)
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
    if cfg.real_speech:
        tasks += plan_real_speech(cfg, tasks)
    return tasks


def _relative_deficit(want: float, have: float) -> float:
    return (want - have) / want if want > 0 else -np.inf


def real_speaker_splits(items: list[dict[str, Any]], cfg: SynthConfig) -> dict[str, str]:
    """The split of every real speaker of ``items`` (the import's entries): speaker -> "train" | "dev" | "test".

    Speakers pinned by ``cfg.real_dev_speakers`` / ``real_test_speakers`` go
    there; the others, largest first, each to the split furthest below its
    share (``cfg.real_split_fractions``) of the recorded seconds, relative to
    that share (so that three equal speakers fill three splits). Speakers with
    aligned recordings (possible targets) and masker-only speakers are shared
    out separately, so that every split gets some of both where there are enough.
    """
    seconds: dict[str, float] = {}
    targets: set[str] = set()
    for e in items:
        seconds[e["speaker"]] = seconds.get(e["speaker"], 0.0) + float(e["duration"])
        if _speaks(e):
            targets.add(e["speaker"])
    pinned = {**{s: "dev" for s in cfg.real_dev_speakers}, **{s: "test" for s in cfg.real_test_speakers}}
    unknown = sorted(set(pinned) - set(seconds))
    if unknown:
        raise ConfigError(f"real speakers pinned to dev/test are not in {cfg.real_speech}: {', '.join(unknown)}")
    shares = np.array(cfg.real_split_fractions, dtype=np.float64) / sum(cfg.real_split_fractions)
    out: dict[str, str] = {}
    for group in (sorted(targets), sorted(set(seconds) - targets)):
        total = sum(seconds[s] for s in group)
        have = {split: sum(seconds[s] for s in group if pinned.get(s) == split) for split in SPLITS}
        out.update({s: pinned[s] for s in group if s in pinned})
        rest = sorted((s for s in group if s not in pinned), key=lambda s: (-seconds[s], item_seed(cfg.seed, s)))
        for spk in rest:
            split = max(SPLITS, key=lambda sp: _relative_deficit(shares[SPLITS.index(sp)] * total, have[sp]))
            out[spk] = split
            have[split] += seconds[spk]
    return out


def _speaks(entry: dict[str, Any]) -> bool:
    """Whether an imported recording has phones (aligned or recognised) and at least one of them is not a pause.

    Recognition may hear only pauses and noises in a short word; such a recording has no lips to draw.
    """
    from avse.data.tts import PAUSE

    return any(p != PAUSE and float(b) > float(a) for p, a, b in entry.get("phones") or ())


def _by_speaker(entries: list[dict[str, Any]], n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Up to ``n`` of ``entries``, one recording of each speaker in turn (speakers and recordings in a random order)."""
    by: dict[str, list[dict[str, Any]]] = {}
    for e in entries:
        by.setdefault(e["speaker"], []).append(e)
    queues = [[lst[int(i)] for i in rng.permutation(len(lst))] for _, lst in sorted(by.items())]
    queues = [queues[int(i)] for i in rng.permutation(len(queues))]
    chosen: list[dict[str, Any]] = []
    while len(chosen) < n and any(queues):
        for q in queues:
            if q and len(chosen) < n:
                chosen.append(q.pop())
    return chosen


def plan_real_speech(cfg: SynthConfig, tts: list[SpeechTask]) -> list[SpeechTask]:
    """The real-recording targets and maskers of every split, added to the TTS ``tts`` tasks (see SynthConfig.real_speech)."""
    from avse.data.realspeech import load_real_speech

    folder = Path(cfg.real_speech)
    items = sorted(load_real_speech(folder), key=lambda e: e["id"])
    splits = real_speaker_splits(items, cfg)
    ratio = cfg.real_fraction / (1.0 - cfg.real_fraction)
    tasks: list[SpeechTask] = []
    for split in SPLITS:
        pool = [e for e in items if splits[e["speaker"]] == split]
        n_tts = {role: sum(t.split == split and t.role == role for t in tts) for role in ("target", "masker")}
        rng = np.random.default_rng(item_seed(cfg.seed, f"real-{split}"))
        eligible = [e for e in pool if _speaks(e) and float(e["duration"]) <= REAL_TARGET_MAX_S]  # aligned or recognised
        n_real = int(round(n_tts["target"] * ratio))
        if cfg.real_targets_by_speaker:
            chosen = _by_speaker(eligible, n_real, rng)
        else:
            chosen = [eligible[int(i)] for i in rng.permutation(len(eligible))[:n_real]]
        for e in chosen:
            src = RealSource((e["id"],), (str(folder / e["wavfile"]),), e["language"], tuple((str(p), float(a), float(b)) for p, a, b in e["phones"]))
            uid = f"real_{e['id']}"
            tasks.append(SpeechTask(uid, split, "target", e["speaker"], None, item_seed(cfg.seed, e["speaker"]),
                                    e["transcript"] or "", item_seed(cfg.seed, uid), src))
        # Maskers: the other recordings (or, with real_masker_reuse, all of them), one speaker at a time in
        # turn, chained up to real_masker_seconds.
        used = set() if cfg.real_masker_reuse else {e["id"] for e in chosen}
        by_speaker: dict[str, list[dict[str, Any]]] = {}
        for e in pool:
            if e["id"] not in used:
                by_speaker.setdefault(e["speaker"], []).append(e)
        queues = {spk: [lst[int(i)] for i in rng.permutation(len(lst))] for spk, lst in sorted(by_speaker.items())}
        order = sorted(queues, key=lambda s: item_seed(cfg.seed, f"{split}:{s}"))
        want = int(round(n_tts["masker"] * ratio))
        made: dict[str, int] = {}
        count = 0
        while count < want and any(queues.values()):
            for spk in order:
                if count >= want or not queues[spk]:
                    continue
                count += 1
                chain: list[dict[str, Any]] = []
                while queues[spk] and sum(float(e["duration"]) for e in chain) < cfg.real_masker_seconds:
                    chain.append(queues[spk].pop())
                made[spk] = made.get(spk, 0) + 1
                uid = f"real_{spk}_m{made[spk]:03d}"
                src = RealSource(tuple(e["id"] for e in chain), tuple(str(folder / e["wavfile"]) for e in chain), chain[0]["language"])
                text = " ".join(e["transcript"] for e in chain if e["transcript"])
                tasks.append(SpeechTask(uid, split, "masker", spk, None, item_seed(cfg.seed, spk), text, item_seed(cfg.seed, uid), src))
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


def _real_audio(task: SpeechTask) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    """A real task's audio [T] (16 kHz, peak 0.9) and, for a target, its phones over that audio.

    A target is cut to its speech (first to last aligned phone) with
    KEEP_SILENCE_S of the recording kept (or zeros added) on either side, as
    TTS utterances are; a masker chains its recordings, each cut to its speech
    with 0.1 s margins, REAL_GAP_S of silence between them.
    """
    from avse.data.align import speech_span
    from avse.data.tts import KEEP_SILENCE_S, PAUSE, PEAK

    assert task.real is not None
    if task.role == "target":
        audio = load_audio(task.real.wavs[0])[0]
        phones = list(task.real.phones)
        speech = [(a, b) for p, a, b in phones if p != PAUSE and b > a]
        if not speech:
            raise MetadataError(task.real.wavs[0], f"{task.real.ids[0]}: no aligned speech phones")
        keep = int(round(KEEP_SILENCE_S * SAMPLE_RATE))
        head = int(round(speech[0][0] * SAMPLE_RATE)) - keep
        tail = int(round(speech[-1][1] * SAMPLE_RATE)) + keep
        n = len(audio)
        audio = np.concatenate([np.zeros(max(0, -head), np.float32), audio[max(0, head) : min(n, tail)], np.zeros(max(0, tail - n), np.float32)])
        dur = len(audio) / SAMPLE_RATE
        shift = head / SAMPLE_RATE
        moved = [(p, min(max(a - shift, 0.0), dur), min(max(b - shift, 0.0), dur)) for p, a, b in phones]
        out: list[tuple[str, float, float]] = []
        for p, a, b in moved:
            if b <= a:
                continue
            if out and p == PAUSE and out[-1][0] == PAUSE:
                out[-1] = (PAUSE, out[-1][1], b)
            else:
                out.append((p, a, b))
        out[0] = (out[0][0], 0.0, out[0][2])
        out[-1] = (out[-1][0], out[-1][1], dur)
    else:
        parts = []
        for k, wav in enumerate(task.real.wavs):
            x = load_audio(wav)[0]
            span = speech_span(x) or (0.0, len(x) / SAMPLE_RATE)
            a, b = max(0, int((span[0] - 0.1) * SAMPLE_RATE)), min(len(x), int((span[1] + 0.1) * SAMPLE_RATE))
            if k:
                parts.append(np.zeros(int(REAL_GAP_S * SAMPLE_RATE), np.float32))
            parts.append(x[a:b])
        audio, out = np.concatenate(parts), []
    peak = float(np.max(np.abs(audio)))
    if peak > 0:
        audio = audio * (PEAK / peak)
    return audio.astype(np.float32), out


def make_speech(root: Path, task: SpeechTask, cfg: SynthConfig) -> dict[str, Any]:
    """Make one utterance (TTS, or a real recording) and write its files; returns its metadata-list entry."""
    if task.real is not None:
        audio, phones = _real_audio(task)
    else:
        from avse.data.tts import synthesize

        utt = synthesize(task.text, task.voice)
        audio, phones = utt.audio, utt.phones
    n_frames = int(np.ceil(len(audio) / SAMPLES_PER_FRAME))
    paths = _speech_paths(root, task)
    save_wav(paths["wav"], audio)
    if task.role == "target":
        from avse.data.face import render_face, style_for_speaker
        from avse.data.visemes import lip_trajectory
        from avse.video.io import write_video
        from avse.video.landmarks import write_landmarks

        rng = np.random.default_rng(task.seed)
        traj = lip_trajectory(phones, n_frames, fps=VIDEO_FPS, rng=rng)
        frames, landmarks = render_face(traj, style_for_speaker(task.face_seed), rng=rng)
        landmarks = dict(landmarks)
        landmarks["phone_symbols"] = np.array([p[0] for p in phones])
        landmarks["phone_times"] = np.array([[p[1], p[2]] for p in phones], dtype=np.float64).reshape(-1, 2)
        write_landmarks(paths["landmarks"], landmarks)
        crf = int(np.random.default_rng(task.face_seed).integers(cfg.video_crf[0], cfg.video_crf[1] + 1))
        write_video(paths["video"], frames, fps=VIDEO_FPS, audio=audio, crf=crf, preset=cfg.video_preset)
    entry = {
        "wavfile": task.id,
        "dataset": task.split,
        "nsamples": int(len(audio)),
        "speaker": task.speaker,
        "text": task.text,
        "engine": "real" if task.real is not None else task.voice.engine,
        "voice": task.speaker if task.real is not None else task.voice.id,
        "nframes": n_frames,
    }
    if task.real is not None:
        entry["language"] = task.real.language
        entry["source"] = list(task.real.ids)
    return entry


def _voice_id(task: SpeechTask) -> str:
    return f"real:{task.speaker}" if task.real is not None else task.voice.id


def make_noise(root: Path, task: NoiseTask, voices: list[np.ndarray]) -> dict[str, Any]:
    """Generate one noise item and write it; returns its masker_noise_list entry."""
    from avse.data.noise import generate_noise

    rng = np.random.default_rng(task.seed)
    audio = generate_noise(task.cls, task.n_samples, rng, voices=voices)
    save_wav(interferer_wav_path(root, task.split, "noise", task.id), audio)
    return {"ID": task.id, "class": task.cls, "type": "noise", "dataset": task.split, "nsamples": int(len(audio))}


def _record_path(root: Path, item_id: str) -> Path:
    return root / WORK_DIR / f"{item_id}.json"


def _scratch(root: Path) -> Path:
    """The folder under ``root`` where TTS engines keep their temporary folders."""
    return root / WORK_DIR / "tmp"


def task_plan(task: SpeechTask | NoiseTask) -> str:
    """A fingerprint of what an item is made from: its task (text, voice, seeds, and the ids and phones of the real
    recordings behind it; not their paths). An item whose plan changed since it was made, such as a real masker chained
    from other recordings after the real speakers were split anew, is made again on a resume."""
    if isinstance(task, SpeechTask) and task.real is not None:
        task = replace(task, real=replace(task.real, wavs=()))  # where the import lies is not what the item is
    return hashlib.sha1(repr(task).encode()).hexdigest()[:16]


def _record(root: Path, task: SpeechTask | NoiseTask, entry: dict[str, Any], outputs: list[Path]) -> None:
    """Write the completion record of an item: its list entry, the size of each output file (under ``_files``) and its
    plan (``_plan``, ``task_plan``)."""
    sizes = {str(p.relative_to(root)): p.stat().st_size for p in outputs}
    write_json(_record_path(root, task.id), {**entry, "_files": sizes, "_plan": task_plan(task)})


def _run_speech(args: tuple[str, SpeechTask, SynthConfig]) -> dict[str, Any]:
    root, task, cfg = Path(args[0]), args[1], args[2]
    with scratch_dir(_scratch(root)):
        entry = make_speech(root, task, cfg)
    _record(root, task, entry, list(_speech_paths(root, task).values()))
    return entry


_BABBLE_VOICES: dict[str, list[np.ndarray]] = {}


def _init_noise_worker(voices: dict[str, list[np.ndarray]]) -> None:
    global _BABBLE_VOICES
    _BABBLE_VOICES = voices


def _run_noise(args: tuple[str, NoiseTask]) -> dict[str, Any]:
    root, task = Path(args[0]), args[1]
    entry = make_noise(root, task, _BABBLE_VOICES.get(task.split, []))
    _record(root, task, entry, [interferer_wav_path(root, task.split, "noise", task.id)])
    return entry


def _done(root: Path, task: SpeechTask | NoiseTask, outputs: list[Path]) -> dict[str, Any] | None:
    """The list entry of an item an earlier run completed, or None when it must be made (again).

    Made: its record exists, every output has the size recorded when it
    was written (a file truncated or replaced since is noticed), and it was
    made from the same plan (``task_plan``; a corpus copied and made again
    with other options keeps only what has not changed). Records without
    sizes or plans (older runs) need only the outputs to exist.
    """
    rec = _record_path(root, task.id)
    if not rec.exists() or not all(p.is_file() for p in outputs):
        return None
    try:
        entry = json.loads(rec.read_text())
    except json.JSONDecodeError:
        return None
    if not isinstance(entry, dict):
        return None
    plan = entry.pop("_plan", None)
    if plan is not None and plan != task_plan(task):
        return None
    sizes = entry.pop("_files", None)
    if sizes is not None:
        for p in outputs:
            if sizes.get(str(p.relative_to(root))) != p.stat().st_size:
                return None
    return entry


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


SILENCE_PEAK = 1.0 / 32768.0  # below one step of 16-bit PCM: a noise file this quiet is silence


def _real_noise_files(cfg: SynthConfig) -> list[Path]:
    """The real noise files of ``cfg.noise_dirs`` (hidden files and folders skipped), each checked to decode and not to be silent (MediaError naming the first bad one)."""
    files: list[Path] = []
    for d in cfg.noise_dirs:
        p = Path(d)
        if not p.exists():
            raise MediaError(p, "no such noise file or folder")
        files += sorted(q for q in p.rglob("*") if q.is_file() and not any(s.startswith(".") for s in q.relative_to(p).parts)) if p.is_dir() else [p]
    for f in files:
        audio = load_audio(f)[0]
        if float(np.max(np.abs(audio))) < SILENCE_PEAK:
            raise MediaError(f, "silent: a noise file needs sound (every sample is zero or below 16-bit resolution)")
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
    earlier, interrupted run are kept: those whose completion record
    (ROOT/.synth/ID.json) lists every output file at its written size. Others
    (never recorded, or a file truncated or replaced since) are made again.
    TTS engines keep their temporary folders in ROOT/.synth/tmp, cleared at
    the start of every run. Writes the three metadata lists last.
    Returns a summary dict (counts per split and kind, seconds of speech).
    """
    if jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {jobs}")
    root = Path(root)
    cfg = replace(cfg, noise_dirs=tuple(str(Path(d).resolve()) for d in cfg.noise_dirs))
    if cfg.real_speech:
        cfg = replace(cfg, real_speech=str(Path(cfg.real_speech).resolve()))
    noise_files = _real_noise_files(cfg)  # checked before anything is written
    speech = plan_speech(cfg)
    cfg_record = {
        "avse": __version__,
        "config": json.loads(json.dumps(asdict(cfg))),
        # the voice of every speaker: what TTS engines a machine has changes the plan
        "voices": {t.speaker: _voice_id(t) for t in speech},
    }
    if cfg.real_speech:  # the real recordings of every item: another import changes the plan
        cfg_record["real_items"] = {t.id: list(t.real.ids) for t in speech if t.real is not None}
    cfg_path = root / "metadata" / "synth_config.json"
    if cfg_path.exists():
        try:
            old = json.loads(cfg_path.read_text())
        except json.JSONDecodeError:
            raise MetadataError(cfg_path, "not valid JSON; remove it only if this folder holds no corpus") from None
        old_cfg = old.get("config")
        if isinstance(old_cfg, dict):  # options added since that corpus was made had their defaults then
            added = {f.name: f.default for f in fields(SynthConfig) if f.name not in old_cfg and f.default is not MISSING}
            old_cfg = {**old_cfg, **json.loads(json.dumps(added))}
        if old_cfg != cfg_record["config"]:
            raise ConfigError(f"{root}: holds a corpus made with another configuration; use a new folder")
        if old.get("voices") != cfg_record["voices"]:
            raise ConfigError(f"{root}: holds a corpus made with other TTS voices (other engines installed?); use a new folder")
        if old.get("real_items") != cfg_record.get("real_items"):
            raise ConfigError(f"{root}: holds a corpus made from another import of real speech; use a new folder")
    meta = ensure_dir(root / "metadata")
    for folder in [meta, root / WORK_DIR] + [root / s / sub for s in SPLITS for sub in _ITEM_FOLDERS]:
        if folder.is_dir():  # temp files an interrupted run left behind
            remove_stale_parts(folder)
    shutil.rmtree(_scratch(root), ignore_errors=True)  # TTS temp folders of a run killed with SIGKILL
    if not cfg_path.exists():
        write_json(cfg_path, cfg_record)
    real = _make_real_noises(root, cfg, noise_files)
    todo, entries = [], {}
    for t in speech:
        rec = _done(root, t, list(_speech_paths(root, t).values()))
        if rec is None:
            todo.append((str(root), t, cfg))
        else:
            entries[t.id] = rec
    for e in _map(_run_speech, todo, jobs, "speech", progress):
        entries[e["wavfile"]] = e
    shutil.rmtree(_scratch(root), ignore_errors=True)

    # Babble needs voices: the masker speech of the same split.
    voices: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    for t in speech:
        if t.role == "masker":
            voices[t.split].append(load_audio(_speech_paths(root, t)["wav"])[0])
    noises = plan_noise(cfg)
    ntodo, noise_entries = [], {}
    for nt in noises:
        rec = _done(root, nt, [interferer_wav_path(root, nt.split, "noise", nt.id)])
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
        if cfg.real_speech:
            real_t = [e for e in targets if e["dataset"] == split and e.get("engine") == "real"]
            real_m = [e for e in maskers if e["dataset"] == split and e.get("engine") == "real"]
            summary[split].update({
                "real_targets": len(real_t),
                "real_target_seconds": round(sum(e["nsamples"] for e in real_t) / SAMPLE_RATE, 1),
                "real_maskers": len(real_m),
                "real_speakers": sorted({e["speaker"] for e in real_t + real_m}),
            })
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
