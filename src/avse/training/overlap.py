"""Training the overlapped speech detector (``avse.models.overlap``) on real voices mixed on the fly."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from avse.data.mixing import scale_to_snr
from avse.errors import ConfigError, MetadataError
from avse.models.overlap import HOP, SAMPLE_RATE, OverlapConfig, OverlapDetector, frame_energy
from avse.training.small import fit_small, recipe_from_mapping

#: a voice's frame counts as sounding within this many dB of its own loudest frame ...
VOICE_ACTIVE_DB = -35.0
#: ... and, for the frame to count as overlapped, within this many dB of the other voice in that frame
AUDIBLE_DB = -20.0


@dataclass(frozen=True)
class Recipe:
    """An overlap detector's training recipe (``configs/overlap/*.yaml``; every field may be given there).

    speech: folders written by ``avse import-speech`` (their ``speech.json``); corpus: AVSE-layout corpora made by
    ``avse synth`` whose train split's voices (targets and maskers, TTS or real) join them; every ``val_every``-th
    speaker (sorted by name) is kept for validation. noise: folders of noise recordings (wav/flac/ogg, searched
    recursively), beside generated noises. Each item is ``seconds`` long: one voice, or with probability
    ``p_two`` two voices (the second ``sir_db`` against the first; with probability ``p_turns`` of those they
    take turns instead of talking over each other), each through a room with probability ``p_reverb``, in noise
    with probability ``p_noise`` at ``snr_db``, through a random response with probability ``p_eq``. ``mbrola``:
    each installed MBROLA voice speaking that many sentences joins the voices (0: none; ``VoicePool``).
    """

    speech: tuple[str, ...] = ("data/real_speech",)
    corpus: tuple[str, ...] = ()
    mbrola: int = 0
    noise: tuple[str, ...] = ("data/real_noise",)
    model: str = "overlap_detector"
    detector: Mapping[str, Any] | None = None
    seconds: float = 4.0
    batch: int = 24
    steps_per_epoch: int = 200
    max_epochs: int = 10
    lr: float = 2e-3
    lr_min: float = 1e-4
    weight_decay: float = 1e-4
    pos_weight: float = 2.0
    p_two: float = 0.5
    p_turns: float = 0.2
    sir_db: tuple[float, float] = (-15.0, 15.0)
    p_reverb: float = 0.5
    rt60: tuple[float, float] = (0.15, 0.8)
    drr_db: tuple[float, float] = (-3.0, 12.0)
    p_noise: float = 0.7
    snr_db: tuple[float, float] = (0.0, 30.0)
    p_eq: float = 0.5
    eq_db: float = 8.0
    val_every: int = 6
    val_items: int = 192
    seed: int = 0

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any]) -> Recipe:
        """A recipe from a YAML mapping; unknown keys are a ConfigError naming them."""
        return recipe_from_mapping(cls, cfg, "overlap", ranges=("sir_db", "rt60", "drr_db", "snr_db"))


class VoicePool:
    """Recordings grouped by speaker, held in memory as int16: ``speakers`` [names], ``clips[name]`` [arrays].

    From ``folders`` written by ``avse import-speech`` and from the train split of AVSE-layout ``corpora`` (target
    and masker utterances; a corpus's speakers are named ``CORPUS:SPEAKER``, so that two corpora never merge voices),
    and with ``mbrola`` > 0 every installed MBROLA voice speaking that many sentences (``mbrola_recordings``; named
    ``mbrola:NAME``).
    """

    def __init__(self, folders: Sequence[str | Path], min_seconds: float = 0.3, corpora: Sequence[str | Path] = (),
                 mbrola: int = 0, progress: bool = False) -> None:
        from avse.audio.io import load_audio
        from avse.data.metadata import (
            interferer_wav_path,
            load_speech_list,
            masker_speech_list_path,
            target_speech_list_path,
            target_wav_path,
        )
        from avse.data.realspeech import load_real_speech

        paths: list[tuple[str, Path]] = []  # (speaker, wav)
        for folder in folders:
            paths += [(str(e["speaker"]), Path(folder) / e["wavfile"]) for e in load_real_speech(folder)
                      if float(e["duration"]) >= min_seconds]
        for root in corpora:
            name = Path(root).name
            for entry in load_speech_list(target_speech_list_path(root)):
                if entry["dataset"] == "train":
                    paths.append((f"{name}:{entry['speaker']}", target_wav_path(root, "train", entry["wavfile"])))
            for entry in load_speech_list(masker_speech_list_path(root)):
                if entry["dataset"] == "train":
                    paths.append((f"{name}:{entry['speaker']}", interferer_wav_path(root, "train", "speech", entry["wavfile"])))
        by_speaker: dict[str, list[np.ndarray]] = {}
        for speaker, wav in paths:
            x = load_audio(wav, SAMPLE_RATE)[0]
            peak = float(np.abs(x).max())
            if peak <= 0 or len(x) < min_seconds * SAMPLE_RATE:
                continue
            by_speaker.setdefault(speaker, []).append((x / peak * 32000).astype(np.int16))
        if mbrola > 0:
            for name, clips in mbrola_recordings(mbrola, progress=progress).items():
                kept = [(x / float(np.abs(x).max()) * 32000).astype(np.int16) for x in clips
                        if len(x) >= min_seconds * SAMPLE_RATE and np.any(x)]
                if kept:
                    by_speaker[f"mbrola:{name}"] = kept
        if len(by_speaker) < 2:
            first = [*folders, *corpora]
            raise MetadataError(Path(str(first[0]) if first else "."), "the overlap detector needs recordings of at least 2 speakers")
        self.speakers = sorted(by_speaker)
        self.clips = by_speaker

    def split(self, val_every: int) -> tuple[list[str], list[str]]:
        """(train speakers, validation speakers): every ``val_every``-th speaker by name is kept for validation."""
        val = self.speakers[val_every - 1 :: val_every] if val_every > 0 else []
        return [s for s in self.speakers if s not in val], val


def mbrola_recordings(sentences: int, seed: int = 0, progress: bool = False) -> dict[str, list[np.ndarray]]:
    """Every installed MBROLA voice (``avse.data.tts.mbrola.mbrola_voices``: recordings of a real speaker's
    diphones) speaking ``sentences`` of the corpus's free sentences at its own pitch and speed -> {database name:
    [float32 [T] at 16 kHz]}. The sentences are drawn from ``seed`` and the voice's name, so the same call gives the
    same audio. EngineMissingError when no voice is installed (``scripts/fetch_mbrola``)."""
    import zlib

    from tqdm import tqdm

    from avse.data.text import free_sentence
    from avse.data.tts import EngineMissingError, Voice, synthesize
    from avse.data.tts.mbrola import mbrola_dir, mbrola_voices

    names = [name for name, _lang, _sex in mbrola_voices()]
    if not names:
        raise EngineMissingError(f"no MBROLA voices in {mbrola_dir()} (scripts/fetch_mbrola fetches them; AVSE_MBROLA names "
                                 "another folder)")
    out: dict[str, list[np.ndarray]] = {}
    for name in tqdm(names, desc="MBROLA voices", unit="voice", disable=not progress):
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        voice = Voice("mbrola", name)
        out[name] = [synthesize(free_sentence(rng), voice).audio for _ in range(sentences)]
    return out


def noise_pool(folders: Sequence[str | Path], max_files: int = 4000) -> list[np.ndarray]:
    """Every noise recording under ``folders`` (wav/flac/ogg/mp3), 16 kHz float32, at least 0.5 s."""
    from avse.audio.io import load_audio

    out = []
    for folder in folders:
        root = Path(folder)
        if not root.is_dir():
            raise MetadataError(root, "no such noise folder (fetch it: scripts/fetch_real_noise)")
        paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".wav", ".flac", ".ogg", ".mp3"))
        for p in paths[:max_files]:
            try:
                x = load_audio(p, SAMPLE_RATE)[0]
            except Exception:  # a damaged or odd file among thousands: skip it
                continue
            if len(x) >= SAMPLE_RATE // 2 and np.any(x):
                out.append(x.astype(np.float32))
    return out


def voices_and_noises(recipe: Any, what: str, progress: bool = False) -> tuple[VoicePool, list[str], list[str], list[np.ndarray], list[np.ndarray]]:
    """A recipe's (``speech``, ``corpus``, ``noise``, ``val_every``) voices and noises, split for training ->
    (pool, train speakers, validation speakers, train noises, validation noises): every ``val_every``-th speaker by
    name and every ``val_every``-th noise file are kept for validation. ConfigError when either side has fewer
    than 2 speakers."""
    voices = VoicePool(recipe.speech, corpora=recipe.corpus, mbrola=recipe.mbrola, progress=progress)
    train_spk, val_spk = voices.split(recipe.val_every)
    if len(train_spk) < 2 or len(val_spk) < 2:
        raise ConfigError(f"{what} recipe: {len(voices.speakers)} speakers give {len(train_spk)} to train and "
                          f"{len(val_spk)} to validation (val_every {recipe.val_every}); each needs at least 2")
    noises = noise_pool(recipe.noise)
    val_noises, train_noises = noises[:: recipe.val_every], [z for i, z in enumerate(noises) if i % recipe.val_every]
    return voices, train_spk, val_spk, train_noises, val_noises


def alternating_gate(n: int, rng: np.random.Generator, low_s: float, high_s: float, keep_some: bool = False) -> np.ndarray:
    """Stretches on and off in turn, each ``low_s``-``high_s`` s long (the first on or off at random), smoothed by a
    40 ms Hann window -> float64 [n] in [0, 1]. ``keep_some``: when no stretch is on (a short ``n``), its first half."""
    gate = np.zeros(n)
    pos, on = 0, rng.random() < 0.5
    while pos < n:
        k = int(rng.uniform(low_s, high_s) * SAMPLE_RATE)
        gate[pos : pos + k] = float(on)
        pos, on = pos + k, not on
    if keep_some and not gate.any():
        gate[: n // 2] = 1.0
    fade = np.hanning(641)
    return np.convolve(gate, fade / fade.sum(), mode="same")


def overlap_labels(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """Which of n 10 ms frames hold two voices: a, b float [T] the two voices as mixed -> float32 [n] of 0/1.

    A frame is overlapped when each voice sounds there (within ``VOICE_ACTIVE_DB`` of its own loudest frame)
    and the weaker is within ``AUDIBLE_DB`` of the stronger."""
    ea, eb = frame_energy(a, n), frame_energy(b, n)
    if ea.max() <= 0 or eb.max() <= 0:
        return np.zeros(n, np.float32)
    on = (ea > ea.max() * 10 ** (VOICE_ACTIVE_DB / 10)) & (eb > eb.max() * 10 ** (VOICE_ACTIVE_DB / 10))
    close = np.minimum(ea, eb) >= np.maximum(ea, eb) * 10 ** (AUDIBLE_DB / 10)
    return (on & close).astype(np.float32)


class ItemMaker:
    """Draws training items: ``make(rng)`` -> (mixture float32 [T], overlap labels float32 [N], two voices or not)."""

    def __init__(self, recipe: Recipe, voices: VoicePool, speakers: list[str], noises: list[np.ndarray]) -> None:
        if len(speakers) < 2:
            raise ConfigError("overlap detector: need at least 2 speakers to mix")
        self.r, self.voices, self.speakers, self.noises = recipe, voices, speakers, noises
        self.n = int(round(recipe.seconds * SAMPLE_RATE))
        self.last_kind = ""

    def track(self, speaker: str, rng: np.random.Generator) -> np.ndarray:
        """One speaker's running speech [T]: recordings one after another with 0.05-0.6 s pauses, from a random
        start (a pause of up to 1 s first), each at unit RMS +- 3 dB."""
        clips = self.voices.clips[speaker]
        out = np.zeros(self.n, np.float64)
        pos = int(rng.uniform(-0.5, 1.0) * SAMPLE_RATE)
        while pos < self.n:
            c = clips[int(rng.integers(len(clips)))].astype(np.float64)
            c = c / (np.sqrt(np.mean(c**2)) + 1e-9) * 10 ** (rng.uniform(-3, 3) / 20)
            s0 = max(0, -pos)
            seg = c[s0 : s0 + self.n - max(pos, 0)]
            out[max(pos, 0) : max(pos, 0) + len(seg)] += seg
            pos += len(c) + int(rng.uniform(0.05, 0.6) * SAMPLE_RATE)
        return out

    def room(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """x [T] through a synthetic room with probability ``p_reverb`` -> [T]."""
        from avse.data.noise import in_room, synthetic_rir

        if rng.random() >= self.r.p_reverb:
            return x
        rir = synthetic_rir(rng.uniform(*self.r.rt60), rng)
        return in_room(x, rir, rng.uniform(*self.r.drr_db))

    def noise(self, rng: np.random.Generator, n: int | None = None) -> np.ndarray:
        """A noise [n] (default an item's length): a recorded one (a random stretch, looped if short) or, one time in
        three, a generated one."""
        from avse.data.noise import generate_noise

        n = self.n if n is None else n
        if not self.noises or rng.random() < 1 / 3:
            return generate_noise(str(rng.choice(["coloured", "hum", "music", "bursts"])), n, rng).astype(np.float64)
        z = self.noises[int(rng.integers(len(self.noises)))]
        if len(z) < n:
            z = np.tile(z, n // len(z) + 1)
        s = int(rng.integers(0, len(z) - n + 1))
        return z[s : s + n].astype(np.float64)

    def make(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, bool]:
        """One item -> (mixture float32 [T], labels float32 [N], whether it holds two voices). ``last_kind`` then
        says which kind it was: "one", "at once" (two talking over each other) or "turns" (two taking turns)."""
        from avse.data.noise import random_eq

        r = self.r
        n_frames = self.n // HOP + 1
        two = rng.random() < r.p_two
        pick = rng.choice(len(self.speakers), size=2, replace=False)
        a = self.room(self.track(self.speakers[pick[0]], rng), rng)
        if two:
            b = self.room(self.track(self.speakers[pick[1]], rng), rng)
            turns = rng.random() < r.p_turns
            self.last_kind = "turns" if turns else "at once"
            if turns:  # they take turns: each holds the floor for 0.5-2 s
                gate = alternating_gate(self.n, rng, 0.5, 2.0)
                a, b = a * gate, b * (1 - gate)
            ra, rb = np.sqrt(np.mean(a**2)), np.sqrt(np.mean(b**2))
            if ra > 0 and rb > 0:
                b = scale_to_snr(b, ra, rb, rng.uniform(*r.sir_db))
            labels = overlap_labels(a, b, n_frames)
            speech = a + b
        else:
            self.last_kind = "one"
            labels = np.zeros(n_frames, np.float32)
            speech = a
        mix = speech
        if rng.random() < r.p_noise:
            z = self.noise(rng)
            rs, rz = np.sqrt(np.mean(speech**2)), np.sqrt(np.mean(z**2))
            if rs > 0 and rz > 0:
                mix = speech + scale_to_snr(z, rs, rz, rng.uniform(*r.snr_db))
        if rng.random() < r.p_eq:
            mix = random_eq(mix, rng, r.eq_db)
        peak = float(np.abs(mix).max())
        mix = mix / peak * 10 ** (rng.uniform(-30, -1) / 20) if peak > 0 else mix
        return mix.astype(np.float32), labels, bool(two)

    def batch(self, rng: np.random.Generator, size: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        """``size`` items -> (mixtures [B, T], labels [B, N], two voices [B] bool)."""
        items = [self.make(rng) for _ in range(size)]
        return (torch.from_numpy(np.stack([i[0] for i in items])), torch.from_numpy(np.stack([i[1] for i in items])),
                np.array([i[2] for i in items]))


def _val_scores(model: OverlapDetector, val: list[tuple[np.ndarray, np.ndarray, bool]]) -> dict[str, float]:
    """Frame accuracy measures and the clip-level split of one-voice from overlapping two-voice items."""
    from avse.models.overlap import overlap_share

    model.eval()
    tp = fp = fn = 0
    shares: dict[bool, list[float]] = {False: [], True: []}
    with torch.no_grad():
        for mix, lab, two in val:
            p = torch.sigmoid(model(torch.from_numpy(mix)[None]))[0].numpy()
            hit = p >= 0.5
            tp += int(np.sum(hit & (lab > 0)))
            fp += int(np.sum(hit & (lab == 0)))
            fn += int(np.sum(~hit & (lab > 0)))
            if not two or lab.mean() > 0.1:
                shares[two].append(overlap_share(p, mix))
    model.train()
    one, two_ = np.array(shares[False]), np.array(shares[True])
    auc = float(np.mean(two_[:, None] > one[None, :]) + 0.5 * np.mean(two_[:, None] == one[None, :])) if len(one) and len(two_) else float("nan")
    return {"frame_precision": tp / max(tp + fp, 1), "frame_recall": tp / max(tp + fn, 1),
            "one_voice_share_median": float(np.median(one)) if len(one) else float("nan"),
            "two_voices_share_median": float(np.median(two_)) if len(two_) else float("nan"), "clip_auc": auc}


def train_overlap(config: Mapping[str, Any], out: str | Path, resume: bool = False, progress: bool = False) -> Path:
    """Train an overlap detector from a recipe mapping into folder ``out`` -> its best checkpoint (by validation
    clip AUC, then frame recall). Checkpoints, log and resume as ``avse.training.small.fit_small``."""
    recipe = Recipe.from_mapping(config)
    if recipe.model != "overlap_detector":
        raise ConfigError(f"overlap recipe: model must be overlap_detector, got {recipe.model!r}")
    voices, train_spk, val_spk, train_noises, val_noises = voices_and_noises(recipe, "overlap", progress)
    maker = ItemMaker(recipe, voices, train_spk, train_noises)
    val_maker = ItemMaker(recipe, voices, val_spk, val_noises)
    vrng = np.random.default_rng([recipe.seed, 999])
    val = [val_maker.make(vrng) for _ in range(recipe.val_items)]
    torch.manual_seed(recipe.seed)
    model = OverlapDetector(OverlapConfig.from_mapping(recipe.detector or {}))
    pos = torch.tensor(recipe.pos_weight)

    def step_loss(rng: np.random.Generator) -> torch.Tensor:
        mix, lab, _ = maker.batch(rng, recipe.batch)
        logits = model(mix)
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, lab[:, : logits.shape[1]], pos_weight=pos)

    def key(scores: dict[str, float]) -> tuple[float, ...]:
        auc = scores["clip_auc"]
        return (auc if math.isfinite(auc) else -1.0, scores["frame_recall"])  # too few items of a kind: recall decides

    extra = {"train_speakers": len(train_spk), "val_speakers": len(val_spk), "noises": len(train_noises) + len(val_noises),
             "val_speaker_names": val_spk}
    return fit_small(model, recipe, out, step_loss, lambda: _val_scores(model, val), key, extra, resume=resume,
                     progress=progress)


__all__ = ["Recipe", "VoicePool", "ItemMaker", "noise_pool", "overlap_labels", "train_overlap", "voices_and_noises", "alternating_gate", "AUDIBLE_DB", "VOICE_ACTIVE_DB"]
