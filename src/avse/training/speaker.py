"""Training the speaker encoder (``avse.models.speaker``) on real and TTS voices, one voice per item."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from avse.data.mixing import scale_to_snr
from avse.errors import ConfigError
from avse.models.overlap import SAMPLE_RATE
from avse.models.speaker import SpeakerConfig, SpeakerEncoder, voices_apart
from avse.training.overlap import ItemMaker, VoicePool, alternating_gate, voices_and_noises
from avse.training.overlap import Recipe as OverlapRecipe
from avse.training.small import fit_small, recipe_from_mapping

#: ``SpeakerItems.recording``: the length (s) of a validation recording of one voice or two taking turns, at least
RECORDING_S = 6.0


@dataclass(frozen=True)
class Recipe:
    """A speaker encoder's training recipe (``configs/speaker/*.yaml``; every field may be given there).

    speech, corpus, mbrola, noise and the split of speakers (every ``val_every``-th by name kept for validation) as
    for the overlap detector (``avse.training.overlap.Recipe``). Each item is ``seconds`` of one speaker's running speech,
    through a room with probability ``p_reverb``, with only some of its words (the rest silenced, as one output
    of a separator that split a voice gives it) with probability ``p_gate``, with a faint second voice
    ``leak_db`` under it with probability ``p_leak``, in noise with probability ``p_noise`` at ``snr_db``, through
    a random response with probability ``p_eq``. ``speeds``: each train speaker played at each of these speed
    factors (tempo, pitch and formants together, ``avse.data.datasets.change_speed``) is a speaker of its own,
    so that a few voices give more (speed perturbation's trick). The loss is an additive angular margin softmax
    over those (``margin`` in radians, ``scale``). Validation embeds ``val_per_speaker`` items of each held-out
    speaker and scores every pair: the equal error rate, and the similarity threshold at which different
    voices pass on ``far`` of the pairs (stored in the checkpoint's extra as ``val.threshold``). It also makes
    ``val_turns`` recordings of each held-out speaker alone and as many of it taking turns with another
    (``SpeakerItems.recording``) and keeps the ``voices_apart`` at or over which at most ``far`` of the turns pass
    as one voice (``val.turn_threshold``: ``avse separate``'s one-voice check by who talks; ``far`` in [0, 1)),
    with the equal error rate of the two kinds and its threshold (``val.turn_eer``, ``val.turn_eer_threshold``).
    """

    speech: tuple[str, ...] = ("data/real_speech",)
    corpus: tuple[str, ...] = ()
    mbrola: int = 0
    noise: tuple[str, ...] = ("data/real_noise",)
    model: str = "speaker_encoder"
    encoder: Mapping[str, Any] | None = None
    seconds: float = 3.0
    batch: int = 32
    steps_per_epoch: int = 200
    max_epochs: int = 8
    lr: float = 2e-3
    lr_min: float = 1e-4
    weight_decay: float = 1e-4
    margin: float = 0.2
    scale: float = 30.0
    p_reverb: float = 0.5
    rt60: tuple[float, float] = (0.15, 0.8)
    drr_db: tuple[float, float] = (-3.0, 12.0)
    p_gate: float = 0.5
    p_leak: float = 0.3
    leak_db: tuple[float, float] = (-30.0, -15.0)
    p_noise: float = 0.5
    snr_db: tuple[float, float] = (5.0, 30.0)
    p_eq: float = 0.5
    eq_db: float = 8.0
    speeds: tuple[float, ...] = (1.0,)
    val_every: int = 6
    val_per_speaker: int = 6
    val_turns: int = 8
    far: float = 0.01
    seed: int = 0

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any]) -> Recipe:
        """A recipe from a YAML mapping; unknown keys are a ConfigError naming them."""
        return recipe_from_mapping(cls, cfg, "speaker", ranges=("rt60", "drr_db", "leak_db", "snr_db", "speeds"))


class SpeakerItems:
    """Draws one-voice training items: ``make(speaker, rng)`` -> float32 [T]; ``batch(rng, size)`` -> (audio
    [B, T], speaker indices [B]) over ``speakers`` (the room, running speech and noise of the overlap detector's
    ``ItemMaker``)."""

    def __init__(self, recipe: Recipe, voices: VoicePool, speakers: list[str], noises: list[np.ndarray]) -> None:
        if len(speakers) < 2:
            raise ConfigError("speaker encoder: need at least 2 speakers")
        self.r, self.speakers = recipe, speakers
        shared = OverlapRecipe(seconds=recipe.seconds, p_reverb=recipe.p_reverb, rt60=recipe.rt60, drr_db=recipe.drr_db)
        self.maker = ItemMaker(shared, voices, speakers, noises)
        self.n = self.maker.n

    def gate(self, rng: np.random.Generator) -> np.ndarray:
        """Some words kept, the rest silenced: 0/1 [T] in 0.3-1.5 s stretches (smoothed by 40 ms), at least one on."""
        return alternating_gate(self.n, rng, 0.3, 1.5, keep_some=True)

    def make(self, speaker: str, rng: np.random.Generator, speed: float = 1.0) -> np.ndarray:
        """One item of ``speaker``'s voice, played ``speed`` times as fast -> float32 [T] (peak between -30 and -1
        dBFS)."""
        from avse.data.datasets import change_speed

        r = self.r
        voice = self.maker.track(speaker, rng)
        if speed != 1.0:
            voice = change_speed(voice, speed)[: self.n]
            voice = np.pad(voice, (0, self.n - len(voice)))
        x = self.maker.room(voice, rng)
        if rng.random() < r.p_gate:
            x = x * self.gate(rng)
        rx = np.sqrt(np.mean(x**2))
        if rng.random() < r.p_leak:
            other = self.speakers[int(rng.integers(len(self.speakers)))]
            if other != speaker:
                y = self.maker.room(self.maker.track(other, rng), rng)
                ry = np.sqrt(np.mean(y**2))
                if rx > 0 and ry > 0:
                    x = x + scale_to_snr(y, rx, ry, -rng.uniform(*r.leak_db))
        x = self.noise_and_response(x, rx, rng)
        peak = float(np.abs(x).max())
        x = x / peak * 10 ** (rng.uniform(-30, -1) / 20) if peak > 0 else x
        return x.astype(np.float32)

    def noise_and_response(self, x: np.ndarray, rx: float, rng: np.random.Generator) -> np.ndarray:
        """x [N] (its speech's RMS ``rx``) in noise with probability ``p_noise`` at ``snr_db``, then through a random
        response with probability ``p_eq`` -> [N]."""
        from avse.data.noise import random_eq

        r = self.r
        if rng.random() < r.p_noise:
            z = self.maker.noise(rng, len(x))
            rz = np.sqrt(np.mean(z**2))
            if rx > 0 and rz > 0:
                x = x + scale_to_snr(z, rx, rz, rng.uniform(*r.snr_db))
        if rng.random() < r.p_eq:
            x = random_eq(x, rng, r.eq_db)
        return x

    def recording(self, first: str, second: str, rng: np.random.Generator) -> np.ndarray:
        """One recording of two turns: ``first``'s running speech, then ``second``'s (the same speaker: one voice
        throughout), the first 25-75 % of it, both through the same room, noise and response (each with its
        probability: ``p_reverb``, ``p_noise``, ``p_eq``), as a microphone hears a conversation -> float32 [N]
        (N = ``RECORDING_S`` or two items, the longer; peak -1 dBFS)."""
        n = max(2 * self.n, int(RECORDING_S * SAMPLE_RATE))
        cut = int(n * rng.uniform(0.25, 0.75))

        def speech(who: str) -> np.ndarray:  # [n] of running speech
            parts, have = [], 0
            while have < n:
                parts.append(self.maker.track(who, rng))
                have += len(parts[-1])
            return np.concatenate(parts)[:n]

        a = speech(first)
        b = a[cut:] if second == first else speech(second)
        x = np.concatenate([a[:cut], b[: n - cut]])
        x = self.maker.room(x, rng)[:n]
        x = self.noise_and_response(x, float(np.sqrt(np.mean(x**2))), rng)
        peak = float(np.abs(x).max())
        return (x / peak * 10 ** (-1 / 20) if peak > 0 else x).astype(np.float32)

    def batch(self, rng: np.random.Generator, size: int) -> tuple[Tensor, Tensor]:
        """``size`` items of random speakers at random ``speeds`` -> (audio [B, T], class indices [B]: speaker index
        times the number of speeds plus the speed's index)."""
        k = len(self.r.speeds)
        who = rng.integers(len(self.speakers) * k, size=size)
        audio = np.stack([self.make(self.speakers[int(i) // k], rng, self.r.speeds[int(i) % k]) for i in who])
        return torch.from_numpy(audio), torch.from_numpy(who.astype(np.int64))


class MarginSoftmax(nn.Module):
    """Additive angular margin softmax (ArcFace's loss): ``forward(emb [B, D] unit, labels [B]) -> loss``. One
    learnt unit vector per training speaker; the target class's angle is widened by ``margin`` before scaling."""

    def __init__(self, dim: int, classes: int, margin: float, scale: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(classes, dim) * 0.01)
        self.margin, self.scale = margin, scale

    def forward(self, emb: Tensor, labels: Tensor) -> Tensor:
        """emb [B, D] (unit), labels int [B] -> the mean loss (a scalar)."""
        cos = emb @ nn.functional.normalize(self.weight, dim=1).T  # [B, C]
        theta = torch.acos(cos.clamp(-1 + 1e-6, 1 - 1e-6))
        target = torch.cos((theta + self.margin).clamp(max=torch.pi))
        onehot = nn.functional.one_hot(labels, cos.shape[1]).bool()
        return nn.functional.cross_entropy(self.scale * torch.where(onehot, target, cos), labels)


def pair_scores(emb: np.ndarray, who: np.ndarray, far: float) -> dict[str, float]:
    """Verification scores of embeddings [N, D] (unit) of speakers ``who`` [N] over all pairs: the equal error
    rate, the cosine threshold at which different speakers pass on at most ``far`` of their pairs, and the share
    of same-speaker pairs that pass it."""
    sim = emb @ emb.T
    iu = np.triu_indices(len(who), 1)
    same = (who[:, None] == who[None, :])[iu]
    s = sim[iu]
    pos, neg = np.sort(s[same]), np.sort(s[~same])
    if not len(pos) or not len(neg):
        return {"eer": float("nan"), "threshold": float("nan"), "same_pass_at_threshold": float("nan")}
    grid, frr, fa = error_curves(pos, neg)
    ok = np.nonzero(fa <= far)[0]
    thr = float(grid[ok[0]]) if len(ok) else float(neg[-1] + 1e-6)
    return {"eer": equal_error(pos, neg)[0], "threshold": thr, "same_pass_at_threshold": float(np.mean(pos >= thr))}


def error_curves(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores that should be high ``pos`` [N] and low ``neg`` [M] (both non-empty) -> (every score as a threshold
    [G] ascending, the share of ``pos`` under each [G], the share of ``neg`` at or over each [G])."""
    pos, neg = np.sort(pos), np.sort(neg)
    grid = np.unique(np.concatenate([pos, neg]))
    return (grid, np.searchsorted(pos, grid, side="left") / len(pos),
            1.0 - np.searchsorted(neg, grid, side="left") / len(neg))


def equal_error(pos: np.ndarray, neg: np.ndarray) -> tuple[float, float]:
    """Scores that should be high ``pos`` [N] and low ``neg`` [M] (both non-empty) -> (the equal error rate, the
    threshold where the two errors of ``error_curves`` come nearest)."""
    grid, miss, fa = error_curves(pos, neg)
    i = int(np.argmin(np.abs(miss - fa)))
    return float((miss[i] + fa[i]) / 2), float(grid[i])


def turn_scores(apart_one: np.ndarray, apart_two: np.ndarray, far: float) -> dict[str, float]:
    """``avse.models.speaker.voices_apart`` of one-voice recordings [N] and of two voices taking turns [M] -> the
    threshold at or over which at most ``far`` (0 <= far < 1) of the two-voice recordings pass as one voice
    ("turn_threshold"), the share of one-voice recordings that reach it ("turn_one_voice_pass"), and the equal
    error rate of the two kinds with the threshold where it is met ("turn_eer", "turn_eer_threshold"; one-voice
    recordings under it and two-voice ones at or over it are the errors). Non-finite values are left out; all NaN
    with none of either kind."""
    if not 0.0 <= far < 1.0:
        raise ConfigError(f"turn_scores: far must be in [0, 1), got {far}")
    one, two = (np.sort(v[np.isfinite(v)]) for v in (np.asarray(apart_one, float), np.asarray(apart_two, float)))
    if not len(one) or not len(two):
        return {k: float("nan") for k in ("turn_threshold", "turn_one_voice_pass", "turn_eer", "turn_eer_threshold")}
    k = int(np.floor(far * len(two) + 1e-9))  # this many two-voice recordings may pass (k < M)
    thr = float(two[len(two) - 1 - k] + 1e-6)  # just over the (k+1)-th highest
    eer, eer_thr = equal_error(one, two)  # the errors: one voice kept apart, two voices merged
    return {"turn_threshold": thr, "turn_one_voice_pass": float(np.mean(one >= thr)),
            "turn_eer": eer, "turn_eer_threshold": eer_thr}


def validation_recordings(items: SpeakerItems, speakers: list[str], per_speaker: int,
                          seed: int) -> list[tuple[str, str, np.ndarray]]:
    """The recordings a speaker encoder's validation sets its turn threshold on: ``per_speaker`` of each of
    ``speakers`` alone and as many of it followed by another of them (``SpeakerItems.recording``), drawn from
    ``seed`` alone -> [(first, second, float32 [N])] (first == second: one voice)."""
    rng = np.random.default_rng([seed, 998])
    out = []
    for k, spk in enumerate(speakers):
        for _ in range(per_speaker):
            other = speakers[(k + 1 + int(rng.integers(len(speakers) - 1))) % len(speakers)]
            out += [(spk, spk, items.recording(spk, spk, rng)), (spk, other, items.recording(spk, other, rng))]
    return out


def train_speaker(config: Mapping[str, Any], out: str | Path, resume: bool = False, progress: bool = False) -> Path:
    """Train a speaker encoder from a recipe mapping into folder ``out`` -> its best checkpoint (lowest validation
    equal error rate); its extra's "val" holds the epoch's ``pair_scores``, "threshold" among them. Checkpoints, log and resume as
    ``avse.training.small.fit_small``."""
    recipe = Recipe.from_mapping(config)
    if recipe.model != "speaker_encoder":
        raise ConfigError(f"speaker recipe: model must be speaker_encoder, got {recipe.model!r}")
    if not 0.0 <= recipe.far < 1.0:
        raise ConfigError(f"speaker recipe: far must be in [0, 1), got {recipe.far}")
    if recipe.val_turns < 0:
        raise ConfigError(f"speaker recipe: val_turns must be 0 or more, got {recipe.val_turns}")
    voices, train_spk, val_spk, train_noises, val_noises = voices_and_noises(recipe, "speaker", progress)
    items = SpeakerItems(recipe, voices, train_spk, train_noises)
    val_items = SpeakerItems(recipe, voices, val_spk, val_noises)
    vrng = np.random.default_rng([recipe.seed, 999])
    val_who = np.repeat(np.arange(len(val_spk)), recipe.val_per_speaker)
    val_audio = torch.from_numpy(np.stack([val_items.make(val_spk[int(i)], vrng) for i in val_who]))
    torch.manual_seed(recipe.seed)
    model = SpeakerEncoder(SpeakerConfig.from_mapping(recipe.encoder or {}))
    head = MarginSoftmax(model.cfg.dim, len(train_spk) * len(recipe.speeds), recipe.margin, recipe.scale)

    def step_loss(rng: np.random.Generator) -> Tensor:
        audio, who = items.batch(rng, recipe.batch)
        return head(model(audio), who)

    recordings = [(a == b, x) for a, b, x in validation_recordings(val_items, val_spk, recipe.val_turns, recipe.seed)]
    warned: list[bool] = []  # the warning below is given once, not every epoch

    def validate() -> dict[str, float]:
        model.eval()
        with torch.no_grad():
            emb = torch.cat([model(val_audio[i : i + 32]) for i in range(0, len(val_audio), 32)]).numpy()
            apart = [(one, voices_apart(model, x)) for one, x in recordings]
        scores = pair_scores(emb, val_who, recipe.far)
        turns = turn_scores(np.array([a for one, a in apart if one and a is not None]),
                            np.array([a for one, a in apart if not one and a is not None]), recipe.far)
        if not np.isfinite(turns["turn_threshold"]) and not warned:
            why = "val_turns is 0" if not recordings else "the held-out recordings held too little sound for two pieces each"
            warnings.warn(f"speaker encoder: no turn threshold ({why}); Separator(speaker=...) then compares the two "
                          "outputs", stacklevel=2)
            warned.append(True)
        return scores | turns

    def key(scores: dict[str, float]) -> tuple[float, ...]:
        eer = scores["eer"]
        return (-eer if np.isfinite(eer) else -1.0,)

    extra = {"train_speakers": len(train_spk), "val_speakers": len(val_spk), "noises": len(train_noises) + len(val_noises),
             "val_speaker_names": val_spk}
    return fit_small(model, recipe, out, step_loss, validate, key, extra, resume=resume, progress=progress, head=head)


__all__ = ["Recipe", "SpeakerItems", "MarginSoftmax", "pair_scores", "turn_scores", "error_curves", "equal_error",
           "validation_recordings", "train_speaker"]
