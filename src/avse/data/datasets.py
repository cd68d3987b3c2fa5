"""Torch datasets: rendered AVSE scenes, and dynamic mixing from the metadata lists."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from avse import SAMPLES_PER_FRAME, VISUAL_STREAMS
from avse.audio.wav16 import read_wav64
from avse.data.metadata import (
    by_speakers,
    interferer_wav_path,
    load_noise_list,
    load_scenes,
    load_speech_list,
    masker_noise_list_path,
    masker_speech_list_path,
    scenes_dir,
    scenes_path,
    speaker_patterns,
    target_landmarks_path,
    target_speech_list_path,
    target_wav_path,
)
from avse.data.mixing import apply_ramp, load_speech_weight, match_band, mix_scene, peak_scale
from avse.data.noise import NoiseAugment, SpeechAugment, augment_noise, augment_speech
from avse.data.scenes import InterfererPool, check_snr_range
from avse.errors import ConfigError, InterfererTooShortError
from avse.utils.seeding import item_seed
from avse.video.landmarks import read_landmarks


def frames_for(n_samples: int) -> int:
    """Number of 25 fps video frames covering ``n_samples`` 16 kHz samples (ceil(T / 640))."""
    return -(-n_samples // SAMPLES_PER_FRAME)


def align_visual(lips: np.ndarray, n_frames: int, pre_frames: int = 0) -> np.ndarray:
    """Pad (by repeating the edge frames) or cut lips [N, ...] to [n_frames, ...], shifted by ``pre_frames``."""
    if pre_frames:
        lips = np.concatenate([np.repeat(lips[:1], pre_frames, axis=0), lips], axis=0)
    if len(lips) >= n_frames:
        return lips[:n_frames]
    return np.concatenate([lips, np.repeat(lips[-1:], n_frames - len(lips), axis=0)], axis=0)


SPEED_STEPS = 100  # speed factors are multiples of 1/SPEED_STEPS (resample_poly's up/down ratio)


def speed_ratio(factor: float) -> tuple[int, int]:
    """The (up, down) integers of a speed change by ``factor``, factor rounded to 1/SPEED_STEPS; ConfigError outside [0.5, 2]."""
    if not 0.5 <= factor <= 2.0:
        raise ConfigError(f"speed factor must be in [0.5, 2], got {factor!r}")
    down = int(round(factor * SPEED_STEPS))
    g = np.gcd(SPEED_STEPS, down)
    return SPEED_STEPS // int(g), down // int(g)


def check_speed_range(name: str, rng_: Sequence[float]) -> tuple[float, float]:
    """Validate a speed-factor range (low, high) within [0.5, 2] -> (low, high); ConfigError otherwise."""
    try:
        lo, hi = (float(v) for v in rng_)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: expected (low, high) speed factors, got {rng_!r}") from None
    if not (0.5 <= lo <= hi <= 2.0):
        raise ConfigError(f"{name}: speed factors must satisfy 0.5 <= low <= high <= 2, got ({lo}, {hi})")
    return lo, hi


def change_speed(x: np.ndarray, factor: float) -> np.ndarray:
    """Play audio [T] ``factor`` times as fast -> [ceil(T / factor)]: tempo, pitch and formants all scale by ``factor``.

    The speed perturbation of speech recognition (resampling, then reading
    at the old rate): a voice at 0.9 sounds like a longer vocal tract and a
    lower voice, at 1.1 like a shorter one. The factor is rounded to
    1/SPEED_STEPS; 1.0 returns ``x`` unchanged.
    """
    up, down = speed_ratio(factor)
    if up == down:
        return x
    from scipy.signal import resample_poly

    return resample_poly(np.asarray(x, dtype=np.float64), up, down)


def speed_length(n_samples: int, factor: float) -> int:
    """The length of :func:`change_speed` of ``n_samples`` samples: ``ceil(n_samples * up / down)``."""
    up, down = speed_ratio(factor)
    return n_samples if up == down else -(-n_samples * up // down)


def speed_source_length(n_samples: int, factor: float) -> int:
    """Samples of a recording to read for ``n_samples`` of it played at ``factor`` speed: ``ceil(n_samples * down / up) + 1``."""
    up, down = speed_ratio(factor)
    return -(-n_samples * down // up) + 1


def stretch_frames(frames: np.ndarray, factor: float, n_frames: int) -> np.ndarray:
    """The video frames [N, ...] of a clip played ``factor`` times as fast -> [n_frames, ...].

    Output frame k shows the clip at its frame ``k * factor`` (with the factor
    rounded as :func:`change_speed` rounds it): float arrays (lips, features)
    are interpolated linearly, others (uint8 crops) take the nearest frame.
    Positions past the end repeat the last frame.
    """
    up, down = speed_ratio(factor)
    pos = np.clip(np.arange(n_frames, dtype=np.float64) * down / up, 0, len(frames) - 1)  # [n_frames]
    if not np.issubdtype(frames.dtype, np.floating):
        return frames[np.rint(pos).astype(np.int64)]
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, len(frames) - 1)
    w = (pos - lo).reshape((-1,) + (1,) * (frames.ndim - 1))
    mixed = np.where(w > 0, frames[lo] * (1 - w) + frames[hi] * w, frames[lo])  # a frame hit exactly is copied (NaN stays put)
    return mixed.astype(frames.dtype)


def scene_pre_frames(scene: Mapping[str, Any]) -> int:
    """The scene's ``pre_samples`` (lead-in before the target) in video frames; ConfigError unless a whole number."""
    pre = int(scene.get("pre_samples", 0))
    if pre % SAMPLES_PER_FRAME:
        raise ConfigError(
            f"scene {scene.get('scene')}: pre_samples {pre} is not a whole number of video frames "
            f"({SAMPLES_PER_FRAME} samples); the lips would drift from the audio"
        )
    return pre // SAMPLES_PER_FRAME


def target_lip_features(root: str | Path, dataset: str, name: str) -> np.ndarray:
    """The visual stream (``avse.video.lipfeat.visual_stream``) of target ``name`` from its landmark file -> float32 [N, 82]."""
    from avse.video.lipfeat import visual_stream

    lm = read_landmarks(target_landmarks_path(Path(root), dataset, name))
    return visual_stream(lm)[0]  # [N, 82]


def _pad_to_frames(x: np.ndarray, n_frames: int) -> np.ndarray:
    n = n_frames * SAMPLES_PER_FRAME
    return np.pad(x, (0, n - len(x))) if len(x) < n else x[:n]


def _item(
    mixture: np.ndarray, target: np.ndarray, interferer: np.ndarray, visual: dict[str, np.ndarray], pre_frames: int, info: dict
) -> dict[str, Any]:
    n_frames = frames_for(len(mixture))
    item: dict[str, Any] = {
        "mixture": torch.from_numpy(_pad_to_frames(mixture, n_frames).astype(np.float32)),  # [F * 640]
        "target": torch.from_numpy(_pad_to_frames(target, n_frames).astype(np.float32)),  # [F * 640]
        "interferer": torch.from_numpy(_pad_to_frames(interferer, n_frames).astype(np.float32)),  # [F * 640]
    }
    for key, arr in visual.items():  # lips [F, 40, 2]; from a cache also crops [F, 96, 96], features [F, D]
        item[key] = torch.from_numpy(np.ascontiguousarray(align_visual(arr, n_frames, pre_frames)))
    item["info"] = info
    return item


class _Visual:
    """The target's visual stream: lip landmarks from the corpus, or features + lips (+ crops when asked) from a cache.

    ``stream`` "light_asd" reads the cache's Light-ASD embeddings (``avse prepare --light-asd``) as the
    item's ``features`` instead of its lip features.
    """

    def __init__(self, root: Path, dataset: str, cache: str | Path | None, crops: bool = False, stream: str = "lip_features"):
        self.root, self.dataset = root, dataset
        self.cache = None if cache is None else Path(cache)
        if crops and self.cache is None:
            raise ConfigError("mouth crops come from a preprocessing cache: give cache= (an `avse prepare` folder)")
        if stream not in VISUAL_STREAMS:
            raise ConfigError(f"visual stream must be one of {', '.join(VISUAL_STREAMS)}, got {stream!r}")
        if stream == "light_asd" and self.cache is None:
            raise ConfigError("Light-ASD embeddings come from a preprocessing cache: give cache= (made by avse prepare --light-asd)")
        self.crops = crops
        self.key = "features" if stream == "lip_features" else "light_asd"

    def __call__(self, name: str) -> dict[str, np.ndarray]:
        if self.cache is None:
            lips = read_landmarks(target_landmarks_path(self.root, self.dataset, name))["lips"]
            return {"lips": lips.astype(np.float32)}
        from avse.data.prepare import cache_path, load_cached

        keys = ("lips", self.key, "crops") if self.crops else ("lips", self.key)
        c = load_cached(cache_path(self.cache, name, self.dataset), keys=keys)
        out = {"lips": c["lips"].astype(np.float32), "features": c[self.key].astype(np.float32)}
        if self.crops:
            out["crops"] = c["crops"]
        return out


class SceneDataset(Dataset):
    """Rendered scenes of one split (ROOT/{split}/scenes), with the target's lip landmarks.

    Item: dict with ``mixture``, ``target``, ``interferer`` float32 [F * 640]
    (zero-padded to whole video frames), ``lips`` float32 [F, 40, 2] (the
    target's lip landmarks, edge frames repeated where the audio is longer; with
    ``cache`` (an ``avse prepare`` output folder) also ``features`` float32
    [F, D], and with ``crops`` also ``crops`` uint8 [F, 96, 96], read from the
    cache, no video decoded) and
    ``info``: ``{"scene", "target", "type", "name", "SNR"}`` (the same keys for
    every item, so that the default collate batches them).
    """

    def __init__(self, root: str | Path, dataset: str, cache: str | Path | None = None, crops: bool = False,
                 visual_stream: str = "lip_features"):
        self.root = Path(root)
        self.dataset = dataset
        self.scenes = load_scenes(scenes_path(root, dataset))
        self.dir = scenes_dir(root, dataset)
        self.visual = _Visual(self.root, dataset, cache, crops, visual_stream)

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, index: int) -> dict[str, Any]:
        s = self.scenes[index]
        wav = {k: read_wav64(self.dir / f"{s['scene']}_{k}.wav") for k in ("mixed", "target", "interferer")}
        pre = scene_pre_frames(s)
        i = s["interferer"]
        info = {"scene": s["scene"], "target": s["target"]["name"], "type": i["type"], "name": i["name"], "SNR": float(s["SNR"])}
        visual = self.visual(s["target"]["name"])
        return _item(wav["mixed"], wav["target"], wav["interferer"], visual, pre, info)


class DynamicMixDataset(Dataset):
    """On-the-fly mixing: each access draws a new interferer, offset and SNR for a target.

    Item ``index`` is target ``index`` of the split; what it is mixed with
    depends only on (``seed``, epoch, ``index``), so it is reproducible per
    epoch whatever the number of DataLoader workers. Call ``set_epoch`` at the
    start of every epoch (as with DistributedSampler). The mixing is the scene
    renderer's (ramps, optional speech weighting, SNR), without int16
    quantisation; all three signals share one peak scale so that the loudest
    peaks at ``peak``. ``cache`` adds features (and ``crops`` the crops) as in SceneDataset. ``segment_frames`` crops a random window of that many
    video frames (audio and lips together); shorter utterances are padded to it
    (silent audio, the last video frame repeated), so that items batch. Items are dicts as in SceneDataset,
    ``visual_stream`` "light_asd" makes ``features`` the cache's Light-ASD embeddings [F, 128].
    ``noise_augment`` (an ``avse.data.noise.NoiseAugment``) passes noise interferers through a
    room and a microphone (``augment_noise``; its own draws, so None changes nothing else).
    ``speech_augment`` (an ``avse.data.noise.SpeechAugment``) passes each voice, the one to keep (alone or
    not) and a competing talker, through a room and a microphone of its own (``augment_speech``; its own
    draws), the reference changed with it, so that a model learns to keep a voice as its recording gave it.
    ``info`` holding ``{"target", "type", "name", "offset", "SNR", "start_frame"}``
    (start_frame 0 without cropping). ``p_clean`` is the probability that an
    item is the target alone (interferer all zeros, "type" ``"clean"``): a
    model trained with it learns to leave clean speech alone.

    ``p_speed`` and ``speed`` perturb the voices' speed (:func:`change_speed`:
    tempo, pitch and formants together, so that a few recorded speakers
    stand for many): the target (with its lips, :func:`stretch_frames`) and a
    speech interferer are each, with probability ``p_speed``, played at a
    factor drawn uniformly from ``speed``, independently. ``info`` then also
    holds ``"speed"`` (the target's factor) and ``"speed_interferer"``;
    ``p_speed`` = 0 changes nothing else.

    ``p_masker_target`` is the probability that the voice to keep is not the
    item's target but a window, as long as the target, of one of the split's
    masker speech items (its own draw), the interferer then drawn as usual but
    never of that masker's speaker. A blind separator learns from it two
    voices of the many masker speakers at once, where the targets are few
    voices (real recordings with transcripts are few). The lips stay the
    target's, so it is for models that take no visual stream; ``info`` then
    holds ``"masker_target"`` (the masker's name, "" where the target stays),
    and ``p_masker_target`` = 0 changes nothing else.

    ``band_match``: when the interferer is a voice, the voice whose recording
    reaches further up is cut to the other's band (:func:`avse.data.mixing.match_band`),
    so that a separator cannot tell two voices apart by the band they were
    recorded in (11 kHz game speech against 16 kHz recordings); False changes nothing.

    ``alone_only``: glob patterns (``"queen-*"``) of masker speakers heard only
    alone: never an interferer, and a voice to keep (``p_masker_target``) only
    in the talker-alone items (``p_clean``), where a masker target is drawn
    among all the split's masker speech. A separator then learns from those
    voices to keep a lone voice whole without mixing them with another voice;
    empty changes nothing. ``never_alone`` is the other way round: those
    speakers are interferers and voices to keep in mixtures, never the lone
    voice of a talker-alone item.
    """

    def __init__(
        self,
        root: str | Path,
        dataset: str,
        snr_speech: Sequence[float] = (-15.0, 5.0),
        snr_noise: Sequence[float] = (-10.0, 10.0),
        p_speech: float = 0.5,
        speech_weight: str | Path | None = None,
        segment_frames: int | None = None,
        seed: int = 0,
        peak: float = 0.9,
        cache: str | Path | None = None,
        crops: bool = False,
        p_clean: float = 0.0,
        p_speed: float = 0.0,
        speed: Sequence[float] = (0.85, 1.15),
        visual_stream: str = "lip_features",
        noise_augment: NoiseAugment | None = None,
        p_masker_target: float = 0.0,
        band_match: bool = False,
        alone_only: Sequence[str] = (),
        never_alone: Sequence[str] = (),
        speech_augment: SpeechAugment | None = None,
    ):
        snr_speech, snr_noise = check_snr_range("snr_speech", snr_speech), check_snr_range("snr_noise", snr_noise)
        check_speed_range("speed", speed)
        if not 0.0 <= p_speech <= 1.0:
            raise ConfigError(f"p_speech must be in [0, 1], got {p_speech}")
        if not 0.0 <= p_clean <= 1.0:
            raise ConfigError(f"p_clean must be in [0, 1], got {p_clean}")
        if not 0.0 <= p_speed <= 1.0:
            raise ConfigError(f"p_speed must be in [0, 1], got {p_speed}")
        if not 0.0 <= p_masker_target <= 1.0:
            raise ConfigError(f"p_masker_target must be in [0, 1], got {p_masker_target}")
        if segment_frames is not None and segment_frames < 1:
            raise ConfigError(f"segment_frames must be >= 1 (or None for whole utterances), got {segment_frames}")
        self.root = Path(root)
        self.dataset = dataset
        self.targets = [e for e in load_speech_list(target_speech_list_path(root)) if e["dataset"] == dataset]
        if not self.targets:
            raise ConfigError(f"{root}: no targets in dataset {dataset!r}")
        speech = [e for e in load_speech_list(masker_speech_list_path(root)) if e["dataset"] == dataset]
        noise = [e for e in load_noise_list(masker_noise_list_path(root)) if e["dataset"] == dataset]
        self.alone_only = speaker_patterns("alone_only", alone_only)
        self.never_alone = speaker_patterns("never_alone", never_alone)
        alone, never = by_speakers(speech, self.alone_only), by_speakers(speech, self.never_alone)
        for name, pats, hits in (("alone_only", self.alone_only, alone), ("never_alone", self.never_alone, never)):
            if not pats:
                continue
            if not hits:
                raise ConfigError(f"{name}: no masker speaker of {dataset!r} matches {', '.join(pats)}")
            if p_masker_target <= 0.0 or p_clean <= 0.0:
                raise ConfigError(f"{name}: masker voices are the lone voice to keep only with p_masker_target > 0 "
                                  "and p_clean > 0, so it would change nothing")
        if {e["speaker"] for e in alone} & {e["speaker"] for e in never}:
            raise ConfigError("alone_only and never_alone match the same speaker")
        alone_names, never_names = {e["wavfile"] for e in alone}, {e["wavfile"] for e in never}
        mixed = [e for e in speech if e["wavfile"] not in alone_names]
        self.pools = {"speech": InterfererPool("speech", mixed), "noise": InterfererPool("noise", noise)}
        # the masker targets of talker-alone items: every masker voice but the never_alone ones
        lone = [e for e in speech if e["wavfile"] not in never_names]
        self.lone_pool = InterfererPool("speech", lone) if alone or never else self.pools["speech"]
        self.speech_by_name = {e["wavfile"]: e for e in speech}
        self.snr = {"speech": tuple(snr_speech), "noise": tuple(snr_noise)}
        self.p_speech = p_speech
        self.p_clean = float(p_clean)
        self.p_speed, self.speed = float(p_speed), (float(speed[0]), float(speed[1]))
        self.h = None if speech_weight is None else load_speech_weight(speech_weight)
        self.segment_frames = segment_frames
        self.seed = seed
        self.peak = peak
        self.epoch = 0
        self.visual = _Visual(self.root, dataset, cache, crops, visual_stream)
        self.noise_augment = noise_augment
        self.speech_augment = speech_augment
        self.p_masker_target = float(p_masker_target)
        self.band_match = bool(band_match)
        if self.p_masker_target > 0.0 and not mixed:
            if alone:
                raise ConfigError(f"alone_only: every masker speaker of {dataset!r} matches "
                                  f"{', '.join(self.alone_only)}; none is left to mix")
            raise ConfigError(f"p_masker_target: {root} has no masker speech in {dataset!r}")

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose mixtures are drawn (reproducible per epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.targets)

    def draw(self, index: int, speaker: str | None = None) -> dict[str, Any]:
        """The interferer, offset and SNR of item ``index`` in the current epoch (no audio read).

        The interferer is long enough for the target as it is played
        (``speeds``): a slowed target lasts longer, and a sped-up talker uses
        more of their recording per second. It is never of ``speaker``
        (default: the target's).
        """
        t = self.targets[index]
        rng = np.random.default_rng(item_seed(self.seed, f"{self.epoch}:{index}"))
        s_t, s_i = self.speeds(index)
        n = speed_length(int(t["nsamples"]), s_t)  # the target's length as played
        up, down = speed_ratio(s_i)
        first = "speech" if rng.random() < self.p_speech else "noise"
        for kind in (first, "noise" if first == "speech" else "speech"):
            need = n if kind == "noise" or up == down else speed_source_length(n, s_i)  # as _interferer reads it
            pick = self.pools[kind].draw(rng, need, t["speaker"] if speaker is None else speaker, set())
            if pick is not None:
                lo, hi = self.snr[kind]
                return {
                    "type": kind,
                    "name": pick["name"],
                    "offset": int(pick["offset"]),
                    "SNR": float(rng.uniform(lo, hi)),
                    "crop": int(rng.integers(1 << 31)),
                }
        raise InterfererTooShortError(f"{t['wavfile']}: no interferer of {self.dataset} is at least {n} samples long")

    def masker_target(self, index: int) -> dict[str, Any] | None:
        """The masker window that replaces item ``index``'s target in the current epoch (``p_masker_target``;
        its own draw), as ``{"name", "offset", "speaker"}``; None when the target stays (or no masker is long enough).
        A talker-alone item draws it among every masker voice but the ``never_alone`` ones, ``alone_only`` ones included."""
        if self.p_masker_target <= 0.0:
            return None
        rng = np.random.default_rng(item_seed(self.seed, f"masker_target:{self.epoch}:{index}"))
        if rng.random() >= self.p_masker_target:
            return None
        pool = self.lone_pool if self._clean(index) else self.pools["speech"]
        pick = pool.draw(rng, int(self.targets[index]["nsamples"]), "", set())
        if pick is None:
            return None
        return {"name": pick["name"], "offset": int(pick["offset"]), "speaker": pick["speaker"]}

    def _clean(self, index: int) -> bool:
        """Whether item ``index`` of the current epoch is the target alone (its own draw: p_clean = 0 changes nothing)."""
        if self.p_clean <= 0.0:
            return False
        return bool(np.random.default_rng(item_seed(self.seed, f"clean:{self.epoch}:{index}")).random() < self.p_clean)

    def speeds(self, index: int) -> tuple[float, float]:
        """The speed factors (target, speech interferer) of item ``index`` in the current epoch (1.0: unchanged; their own draw)."""
        if self.p_speed <= 0.0:
            return 1.0, 1.0
        rng = np.random.default_rng(item_seed(self.seed, f"speed:{self.epoch}:{index}"))
        draws = rng.random(2) < self.p_speed
        factors = rng.uniform(*self.speed, 2)
        s_t, s_i = (float(f) if on else 1.0 for f, on in zip(factors, draws))
        (up_t, down_t), (up_i, down_i) = speed_ratio(s_t), speed_ratio(s_i)
        return down_t / up_t, down_i / up_i  # as rounded by change_speed

    def _interferer(self, d: dict[str, Any], n: int, factor: float) -> np.ndarray:
        """The interferer of draw ``d`` for a target of ``n`` samples, at ``factor`` speed, ramped -> float64 [n]."""
        path = interferer_wav_path(self.root, self.dataset, d["type"], d["name"])
        entries = self.speech_by_name if d["type"] == "speech" else self.pools["noise"].by_name
        left = int(entries[d["name"]]["nsamples"]) - d["offset"]
        if factor == 1.0 and n <= left:
            return apply_ramp(read_wav64(path, d["offset"], n))
        x = read_wav64(path, d["offset"], min(left, speed_source_length(n, factor)))  # enough for n samples at this speed
        x = apply_ramp(change_speed(x, factor)[:n])
        return np.pad(x, (0, n - len(x)))  # a slowed or lengthened one may run out: silence after its ramp

    def _augment_noise(self, index: int, noise: np.ndarray, speaker: str, name: str) -> np.ndarray:
        """The noise of item ``index`` through ``augment_noise`` (its own draw), a second noise of the split
        (not ``name``) under it and a crowd of the split's masker voices (never ``speaker``'s) with it when the
        draws say so -> float64 [T], ramped."""
        assert self.noise_augment is not None
        rng = np.random.default_rng(item_seed(self.seed, f"noise_augment:{self.epoch}:{index}"))
        layer_rng = np.random.default_rng(item_seed(self.seed, f"noise_layer:{self.epoch}:{index}"))
        crowd_rng = np.random.default_rng(item_seed(self.seed, f"noise_crowd:{self.epoch}:{index}"))

        def layer() -> np.ndarray:
            pick = self.pools["noise"].draw(layer_rng, len(noise), speaker, {("noise", name)})
            if pick is None:
                return np.zeros_like(noise)
            return self._interferer({"type": "noise", "name": pick["name"], "offset": int(pick["offset"])}, len(noise), 1.0)

        def talkers(k: int) -> list[np.ndarray]:
            out = []
            for _ in range(k):  # a window as long as the noise where one is, else a whole shorter recording
                pick = self.pools["speech"].draw(crowd_rng, len(noise), speaker, set())
                if pick is None:
                    pick = self.pools["speech"].draw(crowd_rng, 1, speaker, set())
                if pick is None:
                    break
                left = int(self.speech_by_name[pick["name"]]["nsamples"]) - int(pick["offset"])
                path = interferer_wav_path(self.root, self.dataset, "speech", pick["name"])
                out.append(read_wav64(path, int(pick["offset"]), min(left, len(noise))))
            return out

        return apply_ramp(augment_noise(noise, rng, self.noise_augment, layer, talkers))

    def _augment_speech(self, index: int, role: str, voice: np.ndarray) -> np.ndarray:
        """``voice`` [T] of item ``index`` through ``speech_augment`` (its own draw per ``role``, "target" or
        "interferer") -> float64 [T]; unchanged without ``speech_augment``."""
        if self.speech_augment is None:
            return voice
        rng = np.random.default_rng(item_seed(self.seed, f"speech_augment:{role}:{self.epoch}:{index}"))
        return augment_speech(voice, rng, self.speech_augment)

    def __getitem__(self, index: int) -> dict[str, Any]:
        t = self.targets[index]
        m = self.masker_target(index)
        d = self.draw(index, None if m is None else m["speaker"])
        s_t, s_i = self.speeds(index)
        if m is None:
            target = read_wav64(target_wav_path(self.root, self.dataset, t["wavfile"]))
        else:  # a masker's voice in the target's place, as long as the target
            target = self._interferer({"type": "speech", "name": m["name"], "offset": m["offset"]}, int(t["nsamples"]), 1.0)
        visual = self.visual(t["wavfile"])
        if s_t != 1.0:  # the voice and its lips played at s_t
            n0 = frames_for(len(target))
            target = change_speed(target, s_t)
            visual = {k: stretch_frames(align_visual(v, n0), s_t, frames_for(len(target))) for k, v in visual.items()}
        if self._clean(index):
            d = {**d, "type": "clean", "name": "", "offset": 0, "SNR": float("inf")}
            target = self._augment_speech(index, "target", target)
            mixed, noise = target.copy(), np.zeros_like(target)
        else:
            noise = self._interferer(d, len(target), s_i if d["type"] == "speech" else 1.0)
            if self.band_match and d["type"] == "speech":
                target, noise = match_band(target, noise)
            target = self._augment_speech(index, "target", target)
            if d["type"] == "speech":
                noise = apply_ramp(self._augment_speech(index, "interferer", noise))
            if self.noise_augment is not None and d["type"] == "noise":
                noise = self._augment_noise(index, noise, t["speaker"], d["name"])
            mixed, target, noise = mix_scene(target, [noise], d["SNR"], self.h)
        scale = peak_scale([mixed, target, noise], self.peak)
        info = {"target": t["wavfile"], "type": d["type"], "name": d["name"], "offset": d["offset"], "SNR": d["SNR"], "start_frame": 0}
        if self.p_speed > 0.0:
            info.update(speed=s_t, speed_interferer=s_i if d["type"] == "speech" else 1.0)
        if self.p_masker_target > 0.0:  # every item has the key, so that items batch
            info["masker_target"] = "" if m is None else m["name"]
        item = _item(mixed * scale, target * scale, noise * scale, visual, 0, info)
        if self.segment_frames is not None:
            n_frames = item["lips"].shape[0]
            seg = min(self.segment_frames, n_frames)
            start = d["crop"] % (n_frames - seg + 1)
            for k in ("mixture", "target", "interferer"):
                item[k] = item[k][start * SAMPLES_PER_FRAME : (start + seg) * SAMPLES_PER_FRAME]
            for k in ("lips", "crops", "features"):
                if k in item:
                    item[k] = item[k][start : start + seg]
            item["info"]["start_frame"] = start
            if seg < self.segment_frames:  # a short utterance: pad to the window (silence, edge-repeated video)
                n = self.segment_frames * SAMPLES_PER_FRAME
                for k in ("mixture", "target", "interferer"):
                    item[k] = torch.nn.functional.pad(item[k], (0, n - item[k].shape[0]))
                for k in ("lips", "crops", "features"):
                    if k in item:
                        item[k] = torch.from_numpy(align_visual(item[k].numpy(), self.segment_frames))
        return item
