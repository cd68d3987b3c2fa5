"""The facade for users: load_model, Enhancer and Separator (chunked offline inference), and the file-level enhance/separate behind the CLI."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from torch import nn

from avse import SAMPLE_RATE, SAMPLES_PER_FRAME, VIDEO_FPS
from avse.config import (
    ASSIGN_MODES,
    ATTEN_LIM_DB,
    DEFAULT_SHIFTS,
    POSTFILTER,
    check_atten_lim,
    check_postfilter,
    check_shifts,
)
from avse.errors import ConfigError, MediaError, NoFaceError, OutputPathError
from avse.inference import (
    ChunkFn,
    InferenceConfig,
    Progress,
    model_fn,
    postfilter,
    run_shifted,
)
from avse.models.base import SeparationModel
from avse.video.faces import face_features
from avse.video.io import has_video, mux_audio
from avse.video.lipfeat import N_FEATURES

if TYPE_CHECKING:
    from avse.models.overlap import OverlapDetector
    from avse.models.speaker import SpeakerEncoder

#: where the shipped models live
PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"
#: shipped model name -> (checkpoint file in PRETRAINED_DIR, recipe in configs/pretrained/)
SHIPPED: dict[str, tuple[str, str]] = {
    "av": ("av.avse.pt", "av.yaml"),
    "av-causal": ("av_causal.avse.pt", "av_causal.yaml"),
    "audio": ("audio.avse.pt", "audio.yaml"),
    "separate": ("separate.avse.pt", "separate.yaml"),
}

Face = int | tuple[float, float, float, float] | None  # a face index (left to right) or a box x0, y0, x1, y1


# ---------------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------------


def model_path(name_or_path: str | Path) -> Path:
    """The checkpoint file of a shipped model name ("av", "av-causal", "audio", "separate") or a path.

    A shipped name whose file is missing raises ConfigError naming the file
    and the command that trains it; a string that is neither a shipped name
    nor looks like a path (no folder separator, no suffix) raises ConfigError
    listing the names. A path is returned as is (load_model checks it).
    """
    text = str(name_or_path)
    if isinstance(name_or_path, str) and text in SHIPPED:
        file, recipe = SHIPPED[text]
        path = PRETRAINED_DIR / file
        if not path.is_file():
            stem = recipe.removesuffix(".yaml")
            raise ConfigError(
                f"the shipped model {text!r} is missing ({path} does not exist); train it with "
                f"`avse synth data/models --preset models && avse train configs/pretrained/{recipe} --out runs/{stem}` "
                f"and copy the run's best .avse.pt checkpoint to {path}, or give a checkpoint path"
            )
        return path
    path = Path(name_or_path)
    if path.exists() or path.suffix or len(path.parts) > 1:
        return path
    raise ConfigError(f"unknown model {text!r}: expected one of {', '.join(SHIPPED)} or a checkpoint path (.avse.pt)")


def load_model(name_or_path: str | Path) -> tuple[SeparationModel, dict[str, Any]]:
    """Load a shipped model by name or any avse checkpoint by path -> (model in eval mode, info).

    ``info`` is the checkpoint's description (model, config, sample_rate,
    video_fps, versions, extra) plus "name" (what was asked for), "path",
    "audio_visual" (whether the model takes lip features) and "n_outputs"
    (estimates per mixture). Raises ConfigError (unknown name, missing shipped
    file) and MediaError (missing or unreadable checkpoint).
    """
    from avse.models import load_checkpoint

    path = model_path(name_or_path)
    model, info = load_checkpoint(path)
    if model.sample_rate != SAMPLE_RATE:
        raise ConfigError(f"{path}: the model works at {model.sample_rate} Hz, avse inference at {SAMPLE_RATE} Hz")
    if model.audio_visual and model.video_fps != VIDEO_FPS:
        raise ConfigError(f"{path}: the model reads video at {model.video_fps:g} fps, avse inference at {VIDEO_FPS} fps")
    info = dict(info, name=str(name_or_path), path=str(path), audio_visual=model.audio_visual, n_outputs=model.n_outputs)
    return model, info


class _Slot:
    """A model given now (module, or module + info) or by name/path and loaded on first use."""

    def __init__(self, spec: str | Path | SeparationModel | tuple[SeparationModel, dict[str, Any]] | None):
        self.spec = spec
        self._loaded: tuple[SeparationModel, dict[str, Any], ChunkFn] | None = None
        if isinstance(spec, (nn.Module, tuple)):
            self._set(*((spec, None) if isinstance(spec, nn.Module) else spec))

    def _set(self, model: SeparationModel, info: dict[str, Any] | None) -> None:
        if not isinstance(model, SeparationModel):
            raise ConfigError(f"a {type(model).__name__} is not an avse model (subclass avse.models.base.SeparationModel)")
        model.eval()
        base = {"name": type(model).__name__, "audio_visual": model.audio_visual, "n_outputs": model.n_outputs}
        self._loaded = (model, {**base, **dict(info or {})}, model_fn(model))

    def __bool__(self) -> bool:
        return self.spec is not None

    def get(self) -> tuple[SeparationModel, dict[str, Any], ChunkFn]:
        if self._loaded is None:
            if self.spec is None:
                raise ConfigError("no model was given")
            # cast: a module or (module, info) was set in __init__, so what is left to load is a name or path
            self._set(*load_model(cast("str | Path", self.spec)))
        assert self._loaded is not None
        return self._loaded


# ---------------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------------


def to_mono(audio: np.ndarray) -> np.ndarray:
    """Audio [T], [T, C] or [C, T] (the shorter axis is taken as channels) -> float32 mono [T], channels averaged.

    Integer samples are scaled to [-1, 1) (int16 / 32768). Raises ConfigError
    for empty, non-finite or more than 2-D input.
    """
    x = np.asarray(audio)
    if x.dtype.kind == "i":
        x = x.astype(np.float64) / float(np.iinfo(x.dtype).max + 1)
    elif x.dtype.kind != "f":
        raise ConfigError(f"audio must be float or integer samples, got dtype {x.dtype}")
    if x.ndim == 2:
        x = x.mean(axis=0 if x.shape[0] <= x.shape[1] else 1)
    elif x.ndim != 1:
        raise ConfigError(f"audio must be [T], [T, C] or [C, T], got shape {x.shape}")
    if x.size == 0:
        raise ConfigError("audio has no samples")
    if not np.all(np.isfinite(x)):
        raise ConfigError("audio holds NaN or infinite samples")
    return np.ascontiguousarray(x, dtype=np.float32)


def _to_16k(audio: np.ndarray, sr: int) -> np.ndarray:
    """Mono ``audio`` [T] at ``sr`` -> float32 [T'] at 16 kHz."""
    from avse.audio.io import resample

    if int(sr) != sr or sr <= 0:
        raise ConfigError(f"sample rate must be a positive integer, got {sr}")
    return resample(audio, int(sr), SAMPLE_RATE).astype(np.float32, copy=False)


def _from_16k(x: np.ndarray, sr: int, n: int) -> np.ndarray:
    """x [..., T'] at 16 kHz -> [..., n] at ``sr`` (resampled, then cropped or zero-padded to exactly n)."""
    from avse.audio.io import resample

    y = resample(np.ascontiguousarray(x, dtype=np.float32), SAMPLE_RATE, int(sr))
    if y.shape[-1] >= n:
        return np.ascontiguousarray(y[..., :n])
    pad = [(0, 0)] * (y.ndim - 1) + [(0, n - y.shape[-1])]
    return np.pad(y, pad)


#: an output this far (dB) below the input holds next to nothing: `avse separate` says so
SILENT_OUTPUT_DB = -30.0
#: with no faces, a two-output blind separator whose quieter output is this far under the input (dB) heard one
#: voice: that output is bits of it, given back to the louder one (``Separator``). On real clean speech the quieter
#: output is a median 12.6 dB under the input; with two real talkers at -5 / 0 / +5 dB a median 6-7 dB
#: (``bench/bench_assign.py``). With faces, ``avse.talking.expert.one_voice`` also asks the lips
ONE_VOICE_BLIND_DB = -20.0
#: with no faces, a quieter output at or under ``avse.talking.expert.ONE_VOICE_DB`` (-10 dB) is also bits of one voice
#: when the overlapped speech detector (``avse.models.overlap``) hears two voices at once on fewer than this share of
#: the input's active frames: a lone voice that the separator split. Two talkers who never talk at once are then kept
#: apart only while the quieter one's output stays above -10 dB (at equal loudness, about a tenth of the speaking time).
#: With a face, ``Enhancer``'s ``assign`` "auto" takes the blind model's output only when two voices are heard at once
#: on at least this share (``avse.talking.expert.talker_output``). On the real dev set (``bench/bench_real.py``) the
#: two-talker mixtures score 0.12-0.99, the two clean clips whose voice the blind model split into outputs 3-7 dB
#: under the input 0.00 and 0.05
ONE_VOICE_OVERLAP = 0.1
#: with no faces and no two voices at once, a speaker encoder (``avse.models.speaker``, when given) decides. What it
#: compares: "input", the input's own pieces of active audio (``avse.models.speaker.voices_apart``: one voice talks
#: throughout, or two take turns), which can only add to the level rule's merges; or "outputs", the blind model's two
#: outputs (the two settings below). An encoder without a turn threshold compares the outputs (``Separator.speaker_rule``)
ONE_VOICE_SPEAKER_BY = "input"
#: "outputs": two outputs whose voices are this similar (cosine of their embeddings; None: the threshold stored with the
#: encoder, where different voices of its validation speakers pass on 1 % of pairs) are one voice split in two, at any level
ONE_VOICE_SAME_SPEAKER: float | None = None
#: ... and, with "outputs", a quieter output at or under -10 dB is merged only when its voice is the louder one's too
#: (a second talker who takes a few turns is kept)
ONE_VOICE_SPEAKER_GATES_QUIET = True
#: "input": the input is one voice when ``voices_apart`` is at least this (None: the threshold stored with the encoder,
#: ``val.turn_threshold``, at which at most ``far``, 1 % by default, of its validation speakers' recordings of two
#: voices taking turns pass)
ONE_VOICE_TURN_THRESHOLD: float | None = None


#: ``Enhancer``'s ``assign``: the blind model's output is held to this much attenuation (dB). A blind model sometimes
#: splits one voice in two; held to 14 dB, the clean real dev clips that ``avse.talking.expert.talker_output`` sends
#: its way keep PESQ-WB 4.17 / STOI 0.981 over all 23 clips (20 dB: 4.12 / 0.977), at 0.07 dB of SI-SDRi on real
#: two-talker mixtures at 0 dB (``bench/bench_real.py``; picked among 10, 14 and 20 dB on that dev set)
TALKER_ATTEN_LIM_DB = 14.0


def _sync_expert(given: str | Path | nn.Module | None) -> Any:
    """The lip-sync expert a check by lip sync uses: ``given`` (a SyncExpert, or its checkpoint path; None: the shipped
    one), loaded -> SyncExpert, or None when its file is not there."""
    from avse.talking.expert import MODEL_NAME, SyncExpert

    path = given if given is not None else PRETRAINED_DIR / f"{MODEL_NAME}.avse.pt"
    if not isinstance(path, nn.Module) and not Path(path).is_file():
        return None
    return path if isinstance(path, SyncExpert) else SyncExpert.from_pretrained(cast("str | Path", path))


def _small_model(given: Any, cls: Any) -> Any:
    """A small helper model (``avse.models.checkpoint.SmallAudioModel`` subclass ``cls``) as a Separator was given it
    -> the model in eval mode, or None: True the shipped one (None when it is not installed), a path loads one, a
    module is taken as it is, False or None is none."""
    if given is True:
        given = cls.from_pretrained() if cls.PRETRAINED.is_file() else None
    elif isinstance(given, (str, Path)):
        given = cls.from_pretrained(given)
    return None if given is False or given is None else given.eval()


def output_levels_db(outputs: np.ndarray, audio: np.ndarray) -> list[float]:
    """Each output's RMS level against the input's: outputs [S, T], audio [T] -> S values in dB (rounded to 0.1; -120 floor)."""
    ref = float(np.mean(np.square(audio, dtype=np.float64))) + 1e-20
    return [round(max(10.0 * np.log10(float(np.mean(np.square(o, dtype=np.float64))) / ref + 1e-12), -120.0), 1) for o in outputs]


def talker_source(talker: dict[str, Any], markdown: bool = False) -> str:
    """The check for a second voice (``Enhancer.last_info["talker"]``) in words: whose output the talker's voice is, and why.

    ``markdown``: the model's name in backticks (the web UI) rather than quotes (the CLI).
    """
    if talker["used"] != "blind":
        return f"the audio-visual model: {talker['why']}"
    name = f"`{talker['model']}`" if markdown else repr(talker["model"])
    return f"the blind model {name}: {talker['why']}"


def levels_line(names: Sequence[str], levels_db: Sequence[float]) -> str:
    """``"source0 -1.6 dB, source1 -31.2 dB (near silent)"``: each output's level (``output_levels_db``) by name."""
    return ", ".join(f"{n} {db:+.1f} dB" + (" (near silent)" if db < SILENT_OUTPUT_DB else "") for n, db in zip(names, levels_db))


def one_voice_line(info: Mapping[str, Any]) -> str:
    """Why a blind separation gave one output the whole input (``Separator.last_info`` with "one_voice"), one line."""
    share, sim, apart = info.get("overlap_share"), info.get("speaker_similarity"), info.get("voices_apart")
    if share is None:
        how = "the blind model split off a trace of it"
    else:
        if apart is not None and info.get("one_voice_throughout"):
            same = f", one voice throughout the input (its pieces alike: {apart:.2f})"
        else:
            same = ("" if sim is None else f", the same voice in both outputs (similarity {sim:.2f})" if info.get("same_speaker")
                    else f", the quieter 10 dB or more down (voice similarity {sim:.2f}, under the same-voice threshold)")
        how = f"the blind model split it (two voices at once on {share:.0%} of the active frames{same})"
    return f"{how}; {info['one_voice']} gets the whole input"


def _clip_protect(y: np.ndarray) -> tuple[np.ndarray, float]:
    """Scale ``y`` (any shape) down so that max|y| <= 1 -> (y, gain applied; 1.0 when none was needed)."""
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    if peak <= 1.0:
        return y.astype(np.float32, copy=False), 1.0
    return (y / peak).astype(np.float32), 1.0 / peak


def _coverage_from_flags(flags: np.ndarray | None, n: int) -> float:
    """Share of frames with a detected face from front-end flags [N] (0 = detected); 1.0 without flags."""
    if flags is None or n == 0:
        return 1.0 if n else 0.0
    return float(np.mean(np.asarray(flags) == 0))


def _features_array(features: np.ndarray, n_feat: int) -> tuple[np.ndarray, float]:
    """Lip features [F, D] -> (float32 [F, D] with the visual stream's gap policy applied, share of valid frames)."""
    from avse.video.lipfeat import clean_frames

    f = np.asarray(features, dtype=np.float32)
    if f.ndim != 2 or f.shape[1] != n_feat or f.shape[0] == 0:
        raise ConfigError(f"lip features must be [F, {n_feat}] with F >= 1, got shape {f.shape}")
    clean, valid = clean_frames(f)  # [F, D], [F]
    return clean, float(np.mean(valid))


# ---------------------------------------------------------------------------------------------
# enhancement
# ---------------------------------------------------------------------------------------------


def shift_frames(features: np.ndarray, shift: int) -> np.ndarray:
    """features [F, D] moved ``shift`` frames later (earlier when negative), edge frames repeated -> [F, D].

    With the audio ``shift`` frames late (avse.video.sync: positive offset =
    audio late), the lips of video frame f belong with audio frame f + shift,
    so output row f + shift takes input row f.
    """
    n = features.shape[0]
    idx = np.clip(np.arange(n) - shift, 0, n - 1)
    return features[idx]


def mix_back_gain(atten_lim_db: float | None) -> float:
    """An attenuation limit L in dB (None or 0: none) -> the gain 10^(-L/20) at which the input is mixed back in
    (0.0 for none). ConfigError unless L is a positive finite number, 0 or None."""
    lim = check_atten_lim(atten_lim_db)
    return 0.0 if lim is None else 10.0 ** (-lim / 20.0)


class Enhancer:
    """Pull one talker's voice out of a recording, with their lips when a video is given.

    ``model`` is an audio-visual model (AVNet: mixture + lip features) or a
    one-output audio-only model; ``fallback`` a one-output audio-only model used
    when an audio-visual model gets no usable video (loaded on first use when
    given by name or path; None: the audio-visual model runs with an all-zero
    visual stream instead). Long inputs run in overlapping chunks
    (``InferenceConfig``), so memory follows the chunk length, not the file's.
    ``progress``: a tqdm bar of the chunks (True) or a callback
    ``(chunks done, chunks in all)``, the chunks of every shifted run (``avse.inference.run_shifted``; the check of
    ``assign`` reports only the shifted runs of a blind output it takes).
    ``atten_lim_db``: the most the input is ever turned down, in dB: the
    output is ``y + 10^(-L/20) (x - y)``, the model's estimate y with the
    input x mixed back in (default ``ATTEN_LIM_DB``; None or 0: no limit, the
    model's estimate as it is). What the model removes stays at least L dB
    down, and what it wrongly changes in clean speech is L dB smaller.
    ``postfilter``: the strength of a Wiener post-filter on the model's estimate
    before that (``avse.inference.postfilter``: it turns down further the noise
    the model left where it judged a time-frequency bin mostly noise; None or 0:
    none).
    A model trained on Light-ASD embeddings (``visual_stream`` "light_asd")
    needs ``light_asd``, the path of a released Light-ASD checkpoint (default:
    the environment variable AVSE_LIGHT_ASD), whose visual encoder turns the
    video's face crops into its visual stream.

    ``assign`` says whose work the talker's voice is when a face is seen:
    ``"av"`` always the audio-visual model's; ``"sync"`` always the output of the
    blind two-talker model ``separator`` whose speech the lips follow best (the
    sync expert's LSE-C, as ``avse separate`` gives faces their voices);
    ``"auto"`` (the default) that output only when
    ``avse.talking.expert.talker_output`` finds a second voice in the input
    that is not the face's and talks at once with it (the blind model's
    overlapped speech detector, ``ONE_VOICE_OVERLAP``), else the audio-visual
    model's. Both need the face's
    aligned crops: a video file, or ``face_crops`` given to ``enhance``. The
    blind output is held to ``TALKER_ATTEN_LIM_DB`` of attenuation (or the
    smaller ``atten_lim_db``). ``sync_expert``: a SyncExpert or its checkpoint
    (None: the shipped one). ``shifts``: every model run that many times on
    the input delayed by more each time, the lips with it, and averaged
    (``avse.inference.run_shifted``; N times the models' cost; default ``avse.config.DEFAULT_SHIFTS``, 2; 1: one
    run). ``assign``'s check decides on one run of its blind model and makes the others only for the output it takes.
    """

    def __init__(
        self,
        model: str | Path | SeparationModel | tuple[SeparationModel, dict[str, Any]],
        fallback: str | Path | SeparationModel | tuple[SeparationModel, dict[str, Any]] | None = None,
        config: InferenceConfig = InferenceConfig(),
        progress: Progress = False,
        light_asd: str | Path | None = None,
        atten_lim_db: float | None = ATTEN_LIM_DB,
        postfilter: float | None = None,
        assign: str = "auto",
        separator: str | Path | SeparationModel | tuple[SeparationModel, dict[str, Any]] | None = "separate",
        sync_expert: str | Path | nn.Module | None = None,
        shifts: int = DEFAULT_SHIFTS,
    ):
        if assign not in ASSIGN_MODES:
            raise ConfigError(f"assign must be one of {', '.join(ASSIGN_MODES)}, got {assign!r}")
        if assign == "sync" and separator is None:
            raise ConfigError("assign 'sync' takes a blind model's output: give a separator")
        self.shifts = check_shifts(shifts)
        self.assign = assign
        self._separator_spec = separator
        self._separator: Separator | None = None
        self._sync_expert = sync_expert
        self._main = _Slot(model)
        self.set_atten_lim(atten_lim_db)
        self.set_postfilter(postfilter)
        self.model, self.info, _ = self._main.get()
        if self.info["n_outputs"] != 1:
            raise ConfigError(f"model {self.info['name']!r} has {self.info['n_outputs']} outputs; use Separator for it")
        self.audio_visual = bool(self.info["audio_visual"])
        self._fallback = _Slot(fallback if self.audio_visual else None)
        self.config = config
        self.progress = progress
        self.last_info: dict[str, Any] = {}
        self.visual_stream = getattr(getattr(self.model, "cfg", None), "visual_stream", "lip_features") if self.audio_visual else None
        self._light_asd_path = light_asd if light_asd is not None else os.environ.get("AVSE_LIGHT_ASD") or None
        self._light_asd: Any = None

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path = "av",
        fallback: str | Path | None = "audio",
        config: InferenceConfig = InferenceConfig(),
        progress: Progress = False,
        light_asd: str | Path | None = None,
        atten_lim_db: float | None = ATTEN_LIM_DB,
        postfilter: float | None = None,
        assign: str = "auto",
        separator: str | Path | None = "separate",
        shifts: int = DEFAULT_SHIFTS,
    ) -> Enhancer:
        """An Enhancer on a shipped model name or a checkpoint path, with an audio-only ``fallback`` (name, path or None)
        and a blind two-talker ``separator`` for ``assign``, every model run ``shifts`` times."""
        return cls(name_or_path, fallback, config=config, progress=progress, light_asd=light_asd, atten_lim_db=atten_lim_db,
                   postfilter=postfilter, assign=assign, separator=separator, shifts=shifts)

    def blind_separator(self) -> Separator | None:
        """The Separator that runs ``assign``'s blind model (its model loaded once); None when none was given.
        ConfigError or MediaError when the model cannot be loaded (call it early to fail before any work)."""
        if self._separator is None and self._separator_spec is not None:
            sep = Separator(self._separator_spec, av=None, config=self.config, shifts=self.shifts)
            sep._blind.get()
            self._separator = sep
        return self._separator

    @property
    def talker_atten_lim_db(self) -> float | None:
        """The attenuation limit of the blind model's output (``assign``): ``TALKER_ATTEN_LIM_DB``, or the smaller
        ``atten_lim_db``; None when the enhancer has no limit."""
        return None if self.atten_lim_db is None else min(self.atten_lim_db, TALKER_ATTEN_LIM_DB)

    def set_atten_lim(self, atten_lim_db: float | None) -> None:
        """Change the attenuation limit (dB; None or 0: none) for the next ``enhance`` calls."""
        self.mix_back = mix_back_gain(atten_lim_db)
        self.atten_lim_db = check_atten_lim(atten_lim_db)

    def set_postfilter(self, strength: float | None) -> None:
        """Change the post-filter's strength (``avse.inference.postfilter``; None or 0: none) for the next ``enhance`` calls."""
        self.postfilter = check_postfilter(strength)

    def light_asd_encoder(self) -> Any:
        """The frozen Light-ASD visual encoder a "light_asd" model reads (loaded once); ConfigError or MediaError
        when no checkpoint was given or it is missing (call it early to fail before any work)."""
        if self._light_asd is None:
            from avse.models.light_asd import load_visual_encoder

            if self._light_asd_path is None:
                raise ConfigError(f"model {self.info['name']!r} reads Light-ASD embeddings: give the Light-ASD checkpoint "
                                  "with --light-asd FILE (or AVSE_LIGHT_ASD)")
            self._light_asd = load_visual_encoder(self._light_asd_path)
        return self._light_asd

    def _stream(self, front: Any, video_path: Path | None) -> np.ndarray:
        """The model's visual stream of a front-end result: its lip features, or the Light-ASD embeddings [N, 128]
        of the face crops the same landmarks place on ``video_path``'s frames."""
        if self.visual_stream != "light_asd":
            return front.features
        if video_path is None:
            raise ConfigError("a Light-ASD model needs the video file (its frames) or the embeddings [F, 128], "
                              "not a front-end result")
        from avse.models.light_asd import embed_video

        return embed_video(video_path, front.landmarks, self.light_asd_encoder())

    def visual_input(self, video: Any, audio16: np.ndarray, face: Face = None) -> tuple[np.ndarray | None, str | None, dict]:
        """The visual stream ``enhance`` gives the model -> (features float32 [F, D] or None, why not, facts); see
        ``_visual_input``."""
        return self._visual_input(video, audio16, face)[:3]

    def _visual_input(self, video: Any, audio16: np.ndarray,
                      face: Face = None) -> tuple[np.ndarray | None, str | None, dict, dict[str, np.ndarray] | None]:
        """The visual stream ``enhance`` gives the model -> (features float32 [F, D] or None, why not, facts).

        ``video``: a path (the front end runs on it with ``audio16``, float32
        [T] at 16 kHz), a FrontEndResult or features [F, D] (the model's
        visual stream: lip features, or Light-ASD embeddings for a "light_asd"
        model, which needs the path rather than a FrontEndResult); ``face`` as in
        ``enhance``. None and the reason when the face is missing or detected
        on too few frames; facts: face choice, coverage, A/V offset, shift; and
        the face's landmarks when the front end ran (else None).
        """
        from avse.video.frontend import FrontEndResult, process

        n_feat = self.model.visual_channels
        facts: dict[str, Any] = {}
        path = None
        if isinstance(video, (str, Path)):
            path = Path(video)
            try:
                video = process(video, audio=audio16, choose=face)
            except NoFaceError as err:
                return None, f"no face in the video: {err}", facts, None
        landmarks = video.landmarks if isinstance(video, FrontEndResult) else None
        if isinstance(video, FrontEndResult):
            feats, finite = _features_array(self._stream(video, path), n_feat)
            coverage = min(finite, _coverage_from_flags(video.landmarks.get("flags"), feats.shape[0]))
            rep = video.report
            facts = {"face": {k: rep[k] for k in ("track", "choice", "n_tracks", "n_faces") if k in rep}}
            if not np.isnan(video.sync[0]):
                facts["av_offset_ms"] = round(video.sync[0], 1)
                shift = int(round(video.sync[0] / (1000.0 / VIDEO_FPS))) if video.sync[2] else 0
                if shift:  # a reliable offset of a frame or more: move the lips onto the audio
                    feats = shift_frames(feats, shift)
                    facts["lips_shifted_frames"] = shift
        else:
            feats, coverage = _features_array(video, n_feat)
        facts["face_coverage"] = round(coverage, 3)
        if coverage < self.config.min_face_coverage:
            why = f"the face was detected on only {coverage:.0%} of the frames (needs {self.config.min_face_coverage:.0%})"
            return None, why, facts, landmarks
        return feats, None, facts, landmarks

    def _talker(self, x16: np.ndarray, video: Any, landmarks: dict[str, np.ndarray] | None,
                face_crops: np.ndarray | None) -> tuple[np.ndarray | None, dict[str, Any]]:
        """``assign``'s choice for one seen face: x16 float32 [T] -> (the blind model's output it takes [T], or None
        for the audio-visual model's; facts: "used" ("blind" / "av"), why, the measures it went by, and the blind
        model's "chunks" when it ran). It runs before the audio-visual model, which ``enhance`` skips when the blind
        output is taken."""
        t0 = time.perf_counter()
        from avse.audio.features import voiced_fraction
        from avse.talking.expert import (
            face_sync,
            mouth_embeddings,
            mouth_frames,
            talker_output,
            video_mouths,
            window_center,
        )

        def skip(why: str) -> tuple[None, dict[str, Any]]:
            if self.assign == "sync":
                raise ConfigError(f"assign 'sync': {why}")
            return None, {"used": "av", "why": why}

        if face_crops is None and (landmarks is None or not isinstance(video, (str, Path))):
            return skip("the face's crops need the video file")
        separator = self.blind_separator()
        if separator is None:
            return skip("no blind model was given")
        _, binfo, _ = separator._blind.get()
        if binfo["audio_visual"] or binfo["n_outputs"] != 2:
            return skip(f"model {binfo['name']!r} is not a blind two-talker separator")
        expert = _sync_expert(self._sync_expert)
        if expert is None:
            return skip("the sync expert is not installed")
        self._sync_expert = expert  # loaded once
        # the check decides on one run of the blind model; only an output it takes is worth the shifted runs (below)
        first = separator.blind_outputs(x16, shifts=1)
        outs = first[0]
        mix = x16[: outs.shape[-1]]
        levels = output_levels_db(outs, mix)
        facts: dict[str, Any] = {"model": binfo["name"], "levels_db": levels, "chunks": first[1]}
        face: list[Any] = []  # the face's embeddings and where its sync is looked for, made once when first asked

        def seen() -> tuple[Any, int]:
            if not face:
                if face_crops is not None:
                    mouths, offset = mouth_frames(face_crops), None
                else:
                    lm = cast("dict[str, np.ndarray]", landmarks)
                    mouths, offset = video_mouths(cast("str | Path", video), lm), video_offset_frames([lm], x16)
                n = min(int(mouths.shape[0]), -(-mix.shape[0] // SAMPLES_PER_FRAME))
                if n < 10:
                    raise ConfigError(f"{n} frames are too few for the sync expert")
                face.extend([mouth_embeddings(expert, mouths[:n]), window_center(offset)])
            return face[0], face[1]

        def lse_outputs() -> list[float]:
            embedded, center = seen()
            lse = [float(c) for c in face_sync(embedded, outs, expert, center=center)]
            facts["lse_c"] = [round(c, 4) for c in lse]
            return lse

        def voiced(k: int) -> float:
            v = voiced_fraction(outs[k])
            facts["voiced"] = {f"output {k}": round(v, 3)}
            return v

        def lse_input() -> float:
            embedded, center = seen()
            c = float(face_sync(embedded, mix[None], expert, center=center)[0])
            facts["lse_c_input"] = round(c, 4)
            return c

        try:
            k, why = talker_output(levels, lse_outputs, voiced, lse_input, lambda: separator.overlap_share(mix, facts),
                                   ONE_VOICE_OVERLAP)
            if k is None and self.assign == "sync":
                k, why = int(np.argmax(lse_outputs())), f"assign 'sync' (auto would not: {why})"
        except ConfigError as err:  # a clip too short for the sync expert
            return skip(str(err))
        if k is not None and separator.shifts > 1:  # the later runs are put in the first run's order: k holds
            outs, _ = separator.blind_outputs(x16, first=first, progress=self.progress)  # the model's stage, reported
        facts = {"used": "av" if k is None else "blind", "why": why, **facts, "seconds": round(time.perf_counter() - t0, 3)}
        return (None if k is None else outs[k]), facts

    def enhance(self, audio: np.ndarray, sr: int, video: Any = None, face: Face = None,
                face_crops: np.ndarray | None = None, frames_from: str | Path | None = None) -> np.ndarray:
        """Enhance ``audio`` -> float32 [T] at ``sr``, the talker's voice at their level in the input (peak <= 1).

        ``audio``: float (or integer PCM) [T], or [T, C] / [C, T] multichannel,
        mixed to mono (the shorter axis is the channels). It is resampled to
        16 kHz for the model and back to ``sr``. ``video``: None; a video file
        (the front end runs on it with this audio, ``face`` picking the face:
        an index left to right or a box x0, y0, x1, y1); a
        ``avse.video.frontend.FrontEndResult``; or lip features float32
        [F, 82] at 25 fps aligned with the audio (frame f = 16 kHz samples
        640 f .. 640 f + 639; NaN rows are frames without a face). When the
        front end measures a reliable A/V offset of a frame or more, the lip
        features are shifted onto the audio (``last_info["lips_shifted_frames"]``). An
        audio-visual model with no video, or a video whose face is not found
        or is detected on too few frames, uses the fallback. ``face_crops``:
        the face's aligned crops uint8 [F, 96, 96, 3] (``avse.video.roi.face_crops``)
        for ``assign`` when ``video`` is not a file (a file's are cut from it, and
        so are a FrontEndResult's from ``frames_from``, the video file it was made of);
        ``last_info["talker"]`` says what ``assign`` chose and why (when it takes the blind output, the audio-visual
        model is not run, and "chunks" are the blind model's). ``last_info`` then
        says what happened: mode ("audio-visual" / "audio-only"), reason (why
        audio-only, or None), model, chunks, seconds (input length),
        seconds_frontend, seconds_model, clip_gain (< 1 when the output was
        scaled down to peak 1), atten_lim_db (None: no limit), postfilter (its strength; None: off), plus face facts when the front end ran.
        """
        x = to_mono(audio)
        x16 = _to_16k(x, sr)
        info: dict[str, Any] = {"mode": "audio-only", "reason": None, "model": self.info["name"], "seconds": x.shape[0] / sr}
        t0 = time.perf_counter()
        feats, reason, landmarks = None, None, None
        if self.audio_visual:
            if video is None:
                reason = "no video was given"
            else:
                feats, reason, facts, landmarks = self._visual_input(video, x16, face)
                info.update(facts)
        elif video is not None:
            reason = f"model {self.info['name']!r} is audio-only (the video is not used)"
        t1 = time.perf_counter()
        if feats is not None:
            _, _, fn = self._main.get()
            info["mode"] = "audio-visual"
        elif self.audio_visual and self._fallback:
            _, finfo, fn = self._fallback.get()
            if finfo["audio_visual"] or finfo["n_outputs"] != 1:
                raise ConfigError(f"fallback model {finfo['name']!r} must be audio-only with one output")
            info["model"] = finfo["name"]
        else:
            _, _, fn = self._main.get()
            if self.audio_visual:
                reason = f"{reason}; no fallback model, so {self.info['name']!r} ran with a blank visual stream"
        blind = None
        if feats is not None and self.assign != "av":  # first: the model's output is not needed when it takes the blind one
            blind, info["talker"] = self._talker(x16, frames_from or video, landmarks, face_crops)
        if blind is None:
            out, n_chunks = run_shifted(fn, x16, feats, self.config, align=False, progress=self.progress, shifts=self.shifts)
            mix = x16[: out.shape[-1]]
            est, mix_back = out[0], self.mix_back
        else:
            n = min(len(blind), len(x16))
            est, mix, mix_back = blind[:n], x16[:n], mix_back_gain(self.talker_atten_lim_db)
            n_chunks = info["talker"]["chunks"]
        est = est if self.postfilter is None else postfilter(est, mix, self.postfilter)
        y16 = est if mix_back == 0.0 else est + mix_back * (mix - est)
        y, clip_gain = _clip_protect(_from_16k(y16, sr, x.shape[0]))
        t2 = time.perf_counter()
        info.update(reason=reason, chunks=n_chunks, seconds_frontend=round(t1 - t0, 3), seconds_model=round(t2 - t1, 3))
        info["clip_gain"] = round(clip_gain, 4)
        info["atten_lim_db"] = self.atten_lim_db
        info["postfilter"] = self.postfilter
        self.last_info = info
        return y


# ---------------------------------------------------------------------------------------------
# separation
# ---------------------------------------------------------------------------------------------


#: one usable face of a video: its name, its lip features [F, D] and, from a video file, its track's landmarks
_Face = tuple[str, np.ndarray, "dict[str, np.ndarray] | None"]


def video_offset_frames(tracks: Sequence[dict[str, np.ndarray]], audio16: np.ndarray) -> int | None:
    """A video's A/V offset in whole frames from its faces -> the most confident reliable estimate, or None.

    tracks: each face's landmarks (``lips`` [N, 40, 2], optional ``flags`` [N]) on the video's
    timeline; audio16: float32 [T] at 16 kHz from the first frame. Each face's lips against the
    sound (``avse.video.sync.estimate_offset``; in a mixture each face's own voice is in it); the
    estimate with the highest confidence among the reliable ones, rounded to frames (positive: the
    sound is late). None when no face gives a reliable estimate.
    """
    from avse.video.sync import estimate_offset

    best = None
    for lm in tracks:
        try:
            est = estimate_offset(lm["lips"], audio16, flags=lm.get("flags"))
        except ConfigError:  # too short to tell
            continue
        if est.reliable and (best is None or est.confidence > best.confidence):
            best = est
    return None if best is None else int(round(best.offset_ms / (1000.0 / VIDEO_FPS)))


class Separator:
    """Split a recording into voices: one per tracked face (audio-visual model), or a blind model's sources.

    ``model`` is the blind separator (an audio-only model with two or more
    outputs; a checkpoint whose ``info["extra"]["speakers"]`` lists names is a
    known-speakers model, whose outputs keep a fixed order); ``av`` the
    audio-visual model run once per face when a video is given (None: never).
    Both load on first use when given by name or path. ``progress`` as for
    ``Enhancer`` (with a video, the chunks of every face are counted in turn).

    ``assign`` says how a video file's faces get their voices: ``"av"`` runs the
    audio-visual model once per face; ``"sync"`` runs the blind model and gives each
    face the output its lips agree with best (the sync expert's LSE-C,
    ``avse.talking.expert.assign_over_time``: window by window, so talkers who take turns
    keep their own turns; each face's sync looked for near 0, or near the video's A/V offset
    when the lips measure one beyond that window, ``video_offset_frames``; a talker
    beside a listener gets the whole input, ``avse.talking.expert.one_voice``); ``"auto"``
    (the default) is "sync" when two or more faces are
    usable, the blind model has at least as many outputs and it did not miss a talker
    (``avse.talking.expert.missed_talker``: an output near silent, though the face given it
    speaks), else "av". ``sync_expert``: the expert "sync"
    uses (a SyncExpert, or its checkpoint path; None: the shipped one).

    ``overlap``: the overlapped speech detector that tells, with no faces, a lone voice the blind model split from
    two talkers (``ONE_VOICE_OVERLAP``): True the shipped one (when installed), a path or an ``OverlapDetector``,
    or False for none (then only ``ONE_VOICE_BLIND_DB`` decides). ``speaker``: a speaker encoder
    (``avse.models.speaker``; a path or a ``SpeakerEncoder``) that then tells one voice split in two from two talkers
    taking turns (``ONE_VOICE_SPEAKER_BY``: by the input's own pieces, or by the two outputs), or False (the
    default: none ships, since the one trained here does not tell real voices apart well enough; see the README)
    for the level rule of ``one_voice_blind``.

    ``shifts``: run the models that many times, the input (and each face's lips) delayed by
    ``avse.inference.SHIFT_SAMPLES`` more each time, and average the outputs (a blind model's each put in the first
    run's order; ``avse.inference.run_shifted``): the model's frames and chunks fall elsewhere on each run, so what
    one placement gets wrong the others outvote, at ``shifts`` times the models' cost (the default
    ``avse.config.DEFAULT_SHIFTS``; 1: one run).
    """

    def __init__(
        self,
        model: str | Path | SeparationModel | tuple[SeparationModel, dict[str, Any]] | None = "separate",
        av: str | Path | SeparationModel | tuple[SeparationModel, dict[str, Any]] | None = "av",
        config: InferenceConfig = InferenceConfig(),
        progress: Progress = False,
        assign: str = "auto",
        sync_expert: str | Path | nn.Module | None = None,
        overlap: bool | str | Path | nn.Module = True,
        speaker: bool | str | Path | nn.Module = False,
        shifts: int = DEFAULT_SHIFTS,
    ):
        if model is None and av is None:
            raise ConfigError("a Separator needs a blind model, an audio-visual model or both")
        if assign not in ASSIGN_MODES:
            raise ConfigError(f"assign must be one of {', '.join(ASSIGN_MODES)}, got {assign!r}")
        if assign == "sync" and model is None:
            raise ConfigError("assign 'sync' gives a blind model's outputs to the faces: give a blind model")
        self.shifts = check_shifts(shifts)
        self._blind = _Slot(model)
        self._av = _Slot(av)
        self.assign = assign
        self._sync_expert = sync_expert
        self._overlap: Any = overlap
        self._speaker: Any = speaker
        self.config = config
        self.progress = progress
        self.last_info: dict[str, Any] = {}

    def overlap_detector(self) -> OverlapDetector | None:
        """The overlapped speech detector (loaded on first use, in eval mode), or None: switched off, or not installed."""
        from avse.models.overlap import OverlapDetector

        self._overlap = _small_model(self._overlap, OverlapDetector)
        return cast("OverlapDetector | None", self._overlap)

    def overlap_share(self, x16: np.ndarray, info: dict[str, Any] | None = None) -> float | None:
        """The share of the active frames of audio float [T] at 16 kHz where the overlapped speech detector hears two
        voices at once (``avse.models.overlap.overlap_share``), or None without a detector. ``info`` gets
        "overlap_share", rounded."""
        det = self.overlap_detector()
        if det is None:
            return None
        from avse.models.overlap import overlap_share

        share = overlap_share(det.frame_probs(x16), x16)
        if info is not None:
            info["overlap_share"] = round(share, 3)
        return share

    def speaker_encoder(self) -> SpeakerEncoder | None:
        """The speaker encoder (loaded on first use, in eval mode), or None: switched off (True: the shipped one, when
        installed; none is)."""
        from avse.models.speaker import SpeakerEncoder

        self._speaker = _small_model(self._speaker, SpeakerEncoder)
        return cast("SpeakerEncoder | None", self._speaker)

    def one_voice_blind(self, outputs: np.ndarray, x16: np.ndarray, info: dict[str, Any] | None = None) -> int | None:
        """Did a two-output blind model hear one voice and split it? outputs float [2, T], x16 the input [T] at
        16 kHz -> the index of the output that should get the whole input, or None.

        Yes when the quieter output is ``ONE_VOICE_BLIND_DB`` or more under the input. Else only when the overlap
        detector hears two voices at once on fewer than ``ONE_VOICE_OVERLAP`` of the input's active frames, and
        then when the quieter one is ``avse.talking.expert.ONE_VOICE_DB`` or more under the input, or, with the
        speaker encoder (``speaker_rule`` "input"), at any level when the input's pieces are one voice
        throughout (``avse.models.speaker.voices_apart`` at or over ``turn_threshold``). With "outputs" the encoder
        compares the two outputs instead: the same voice (``ONE_VOICE_SAME_SPEAKER``) at any level, and (with
        ``ONE_VOICE_SPEAKER_GATES_QUIET``) the quieter one that far under only when the same voice. ``info`` gets
        "overlap_share", and "voices_apart" with "one_voice_throughout", or "speaker_similarity" with
        "same_speaker", when they were measured."""
        from avse.talking.expert import ONE_VOICE_DB

        levels = output_levels_db(outputs, x16)
        if len(levels) != 2:
            return None
        quiet = int(np.argmin(levels))
        if levels[quiet] <= ONE_VOICE_BLIND_DB:
            return 1 - quiet
        quiet_enough = levels[quiet] <= ONE_VOICE_DB
        enc = self.speaker_encoder()
        if enc is None and not quiet_enough:
            return None
        share = self.overlap_share(x16, info)
        if share is None or share >= ONE_VOICE_OVERLAP:
            return None
        if enc is None:
            return 1 - quiet
        if self.speaker_rule(enc) == "input":
            if quiet_enough:
                return 1 - quiet
            from avse.models.speaker import voices_apart

            apart = voices_apart(enc, x16)
            throughout = apart is not None and apart >= self.turn_threshold(enc)
            if info is not None:
                info["voices_apart"] = None if apart is None else round(apart, 3)
                info["one_voice_throughout"] = bool(throughout)
            return 1 - quiet if throughout else None
        from avse.models.speaker import similarity

        sim = similarity(enc.embed(outputs[0]), enc.embed(outputs[1]))
        same = sim >= self.same_speaker_threshold(enc)
        if info is not None:
            info["speaker_similarity"], info["same_speaker"] = round(sim, 3), bool(same)
        if same:
            return 1 - quiet
        return 1 - quiet if quiet_enough and not ONE_VOICE_SPEAKER_GATES_QUIET else None

    @staticmethod
    def speaker_rule(enc: SpeakerEncoder) -> str:
        """What the speaker encoder compares in ``one_voice_blind``: ``ONE_VOICE_SPEAKER_BY``, except that an encoder
        with no turn threshold (trained before it was kept, or on recordings too short for it) and no
        ``ONE_VOICE_TURN_THRESHOLD`` compares the two "outputs", the rule it was made for. ConfigError for another
        value of ``ONE_VOICE_SPEAKER_BY``."""
        if ONE_VOICE_SPEAKER_BY not in ("input", "outputs"):
            raise ConfigError(f"avse.api.ONE_VOICE_SPEAKER_BY must be 'input' or 'outputs', got {ONE_VOICE_SPEAKER_BY!r}")
        if ONE_VOICE_SPEAKER_BY == "input" and ONE_VOICE_TURN_THRESHOLD is None:
            thr = (enc.extra.get("val") or {}).get("turn_threshold")
            if thr is None or not np.isfinite(thr):
                return "outputs"
        return ONE_VOICE_SPEAKER_BY

    @staticmethod
    def turn_threshold(enc: SpeakerEncoder) -> float:
        """The ``voices_apart`` at or over which an input is one voice: ``ONE_VOICE_TURN_THRESHOLD``, or the encoder's."""
        if ONE_VOICE_TURN_THRESHOLD is not None:
            return ONE_VOICE_TURN_THRESHOLD
        thr = (enc.extra.get("val") or {}).get("turn_threshold")
        if thr is None or not np.isfinite(thr):
            raise ConfigError("the speaker encoder has no turn threshold (its checkpoint lacks val.turn_threshold: train it "
                              "again, or set avse.api.ONE_VOICE_TURN_THRESHOLD)")
        return float(thr)

    @staticmethod
    def same_speaker_threshold(enc: SpeakerEncoder) -> float:
        """The similarity at or over which two outputs are one voice: ``ONE_VOICE_SAME_SPEAKER``, or the encoder's."""
        if ONE_VOICE_SAME_SPEAKER is not None:
            return ONE_VOICE_SAME_SPEAKER
        thr = (enc.extra.get("val") or {}).get("threshold")
        if thr is None:
            raise ConfigError("the speaker encoder has no same-voice threshold (its checkpoint lacks val.threshold)")
        return float(thr)

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path | None = "separate",
        av: str | Path | None = "av",
        config: InferenceConfig = InferenceConfig(),
        progress: Progress = False,
        assign: str = "auto",
        overlap: bool | str | Path = True,
        speaker: bool | str | Path = False,
        shifts: int = DEFAULT_SHIFTS,
    ) -> Separator:
        """A Separator with the blind model ``name_or_path`` and the audio-visual model ``av`` (names or paths);
        ``overlap``, ``speaker`` and ``shifts`` as for ``Separator``."""
        return cls(name_or_path, av, config=config, progress=progress, assign=assign, overlap=overlap, speaker=speaker,
                   shifts=shifts)

    def _faces(self, video: Any, n_feat: int) -> tuple[list[_Face], str | None, list[dict]]:
        """video -> ([(name, features [F, D], landmarks)] of the usable faces, why none, facts per face).

        landmarks: the face's track (``FaceFeatures.landmarks``) for a video file, else None."""
        from avse.video.frontend import FrontEndResult

        items: list[tuple[str, Any, float, dict[str, Any], dict[str, np.ndarray] | None]]
        if isinstance(video, (str, Path)):
            try:
                found = face_features(video)
            except NoFaceError as err:
                return [], f"no face in the video: {err}", []
            items = [(f"face{f.index}", f.features, f.coverage, {"box": list(f.box)}, f.landmarks) for f in found]
        elif isinstance(video, FrontEndResult):
            cov = _coverage_from_flags(video.landmarks.get("flags"), len(video.features))
            items = [("face0", video.features, cov, {}, None)]
        elif isinstance(video, np.ndarray):
            items = [("face0", video, 1.0, {}, None)]
        else:
            items = [(f"face{i}", f, 1.0, {}, None) for i, f in enumerate(video)]
        faces: list[_Face] = []
        facts = []
        for name, feats, cov, extra, landmarks in items:
            arr, finite = _features_array(feats, n_feat)
            cov = min(cov, finite)
            usable = cov >= self.config.min_face_coverage
            facts.append({"name": name, "coverage": round(cov, 3), "used": usable, **extra})
            if usable:
                faces.append((name, arr, landmarks))
        why = None if faces else f"no face was detected on at least {self.config.min_face_coverage:.0%} of the frames"
        return faces, why, facts

    def blind_outputs(self, x16: np.ndarray, align: bool = True, shifts: int | None = None,
                      first: tuple[np.ndarray, int] | None = None, progress: Progress | None = None) -> tuple[np.ndarray, int]:
        """The blind model's outputs of audio float32 [T] at 16 kHz -> (outputs [S, T], chunks): chunked, and kept
        on the input's scale when they add up to it (a gain fitted per chunk would lift a near-silent one).
        ``align``: keep the outputs' order across chunks (a known-speakers model's order is fixed). ``shifts``: runs
        averaged (None: the Separator's); ``first``: the first run's result, already made with ``shifts`` 1 (the
        outputs then keep its order); ``progress``: as ``run_shifted``'s (None: the Separator's). ConfigError when no
        blind model was given."""
        if not self._blind:
            raise ConfigError("no blind separation model was given")
        bmodel, _, fn = self._blind.get()
        config = replace(self.config, match_gain=False) if bmodel.sums_to_input else self.config
        return run_shifted(fn, x16, None, config, align=align, progress=self.progress if progress is None else progress,
                           shifts=self.shifts if shifts is None else shifts, first=first)

    def _assign_by_sync(self, x16: np.ndarray, video: Any, faces: list[_Face],
                        info: dict[str, Any]) -> tuple[np.ndarray, int] | None:
        """The blind model's outputs given to the faces by lip sync -> (est [F, T16], chunks), or None (why in
        ``info["assign_reason"]``) when ``assign`` "auto" finds it does not apply. Fills ``info`` as ``separate`` says."""
        from avse.talking.expert import (
            assign_over_time,
            face_voices,
            missed_talker,
            one_voice,
            video_mouths,
            window_center,
        )

        strict = self.assign == "sync"

        def skip(why: str) -> tuple[np.ndarray, int] | None:
            if strict:
                raise ConfigError(f"assign 'sync': {why}")
            info["assign_reason"] = why
            return None

        if not isinstance(video, (str, Path)) or any(lm is None for _, _, lm in faces):
            return skip("the faces' crops need the video file")
        if not self._blind:
            return skip("no blind model was given")
        if len(faces) < 2 and not strict:
            return skip("one usable face: the audio-visual model extracts its voice")
        _, binfo, _ = self._blind.get()
        if binfo["audio_visual"] or binfo["n_outputs"] < len(faces):
            return skip(f"model {binfo['name']!r} is not a blind separator with {len(faces)}+ outputs")
        expert = _sync_expert(self._sync_expert)
        if expert is None:
            return skip("the sync expert is not installed")
        self._sync_expert = expert  # loaded once
        est, n_chunks = self.blind_outputs(x16)
        tracks = [cast("dict[str, np.ndarray]", lm) for _, _, lm in faces]
        mouths = video_mouths(video, tracks)  # every face cut in one pass
        offset = video_offset_frames(tracks, x16)
        res = assign_over_time(mouths, est, expert, center=window_center(offset))
        turns = [{"start_s": round(first / VIDEO_FPS, 2), "sources": pairing} for first, pairing in res["segments"]]
        levels = output_levels_db(est, x16)
        missed = missed_talker(levels, res)
        if missed is not None and not strict:
            return skip(missed)
        talker = one_voice(levels, res)
        info.update(mode="blind, by lip sync", model=binfo["name"], names=[name for name, _, _ in faces],
                    assignment={"sources": res["order"], "lse_c": np.round(res["lse_c"], 4).tolist(), "turns": turns,
                                "av_offset_frames": offset,
                                "one_voice": None if talker is None else faces[talker][0]})
        return face_voices(est, res, x16, talker), n_chunks

    def _one_face(self, x16: np.ndarray, video: str | Path, landmarks: dict[str, np.ndarray] | None, est: np.ndarray,
                  info: dict[str, Any]) -> np.ndarray:
        """One face seen (``assign`` "auto"): its voice is the blind model's output when ``avse enhance``'s check for a
        second voice takes it (``Enhancer``'s ``assign``; ``info["talker"]`` says why), else the audio-visual model's
        ``est`` [1, T]. Nothing is mixed back: each output of ``separate`` is one voice."""
        if landmarks is None:
            return est
        check = Enhancer(self._av.get()[:2], assign="auto", separator=self._blind.get()[:2], config=self.config,
                         sync_expert=self._sync_expert, atten_lim_db=None, shifts=self.shifts)
        blind, info["talker"] = check._talker(x16, video, landmarks, None)
        self._sync_expert = check._sync_expert  # loaded once
        if blind is None:
            return est
        n = min(len(blind), est.shape[-1])
        info.update(mode="blind, by lip sync", model=info["talker"]["model"])
        return np.ascontiguousarray(blind[None, :n])

    def separate(self, audio: np.ndarray, sr: int, video: Any = None) -> np.ndarray:
        """Separate ``audio`` -> float32 [S, T] at ``sr`` (each source at its level in the input, peak <= 1).

        ``audio`` as for ``Enhancer.enhance`` (mono, stereo mixed down,
        resampled at the edges). With a ``video`` (a file: every face is
        tracked once; a FrontEndResult or features [F, 82]: one face; a list
        of feature arrays: one per face) and an audio-visual model, S is the
        number of usable faces, left to right: each face's voice from the
        blind model's outputs by lip sync or from the audio-visual model, as
        ``assign`` says (``last_info``: "assignment" holds the whole clip's
        choice of output for each face ("sources"), the LSE-C of every face and
        output, "turns": [{start_s, sources}] where the pairing changes (talkers
        who take turns), "av_offset_frames" (the video's A/V offset from the lips, None:
        not measured; the sync is looked for around it when it lies beyond
        ``avse.talking.expert.ASSIGN_NEAR``, else around 0) and "one_voice" (the face that
        talks beside a listener and got the whole input, or None); "assign_reason" why
        "auto" did not assign). Otherwise the blind model's S
        outputs (permutation arbitrary but kept consistent across chunks, or
        the fixed order of a known-speakers model). ``last_info``: mode
        ("audio-visual" / "blind, by lip sync" / "blind" / "known-speakers"), names (one per output:
        face0.., source0.., or the speakers), levels_db (each output's level
        against the input's; an output more than ``SILENT_OUTPUT_DB`` below it
        is near silent: one voice, not two), reason, faces, model, chunks,
        seconds, seconds_frontend, seconds_model, clip_gain, and one_voice (no faces: the name of
        the output that got the whole input because the blind model heard one voice and split it,
        ``one_voice_blind``; that other one is then silent) with overlap_share (when the overlap
        detector was asked) and voices_apart and one_voice_throughout, or speaker_similarity and same_speaker (when a speaker encoder was).
        """
        x = to_mono(audio)
        x16 = _to_16k(x, sr)
        info: dict[str, Any] = {"reason": None, "seconds": x.shape[0] / sr}
        t0 = time.perf_counter()
        faces: list[_Face] = []
        reason = None
        if video is not None and self._av:
            av_model, av_info, av_fn = self._av.get()
            if not av_info["audio_visual"]:
                raise ConfigError(f"model {av_info['name']!r} is not audio-visual")
            if getattr(getattr(av_model, "cfg", None), "visual_stream", "lip_features") != "lip_features":
                raise ConfigError(f"model {av_info['name']!r} reads Light-ASD embeddings; per-face separation runs on "
                                  "lip features (use it with avse enhance --face)")
            faces, reason, info["faces"] = self._faces(video, av_model.visual_channels)
        elif video is not None and self.assign == "sync":
            faces, reason, info["faces"] = self._faces(video, N_FEATURES)
        elif video is not None:
            reason = "no audio-visual model was given"
        else:
            reason = "no video was given"
        t1 = time.perf_counter()
        n_chunks = 0
        assigned = self._assign_by_sync(x16, video, faces, info) if faces and self.assign != "av" else None
        if assigned is not None:
            est, n_chunks = assigned
        elif faces:
            outs = []
            for _, feats, _ in faces:
                out, n_chunks = run_shifted(av_fn, x16, feats, self.config, progress=self.progress, shifts=self.shifts)
                outs.append(out[0])
            est = np.stack(outs)  # [S, T16]
            info.update(mode="audio-visual", model=av_info["name"], names=[name for name, _, _ in faces])
            if len(faces) == 1 and self.assign == "auto" and self._blind and isinstance(video, (str, Path)):
                est = self._one_face(x16, video, faces[0][2], est, info)
        else:
            if not self._blind:
                raise ConfigError(f"no usable face ({reason}) and no blind separation model was given")
            _, binfo, _ = self._blind.get()
            if binfo["audio_visual"] or binfo["n_outputs"] < 2:
                raise ConfigError(f"model {binfo['name']!r} is not a blind separator (an audio-only model with 2+ outputs)")
            speakers = list((binfo.get("extra") or {}).get("speakers") or [])
            known = len(speakers) == binfo["n_outputs"]
            est, n_chunks = self.blind_outputs(x16, align=not known)
            names = [str(s) for s in speakers] if known else [f"source{i}" for i in range(est.shape[0])]
            info.update(mode="known-speakers" if known else "blind", model=binfo["name"], names=names)
            whole = None if known or est.shape[0] != 2 else self.one_voice_blind(est, x16, info)
            if whole is not None:  # one voice, bits of it split off
                est[whole] += est[1 - whole]
                est[1 - whole] = 0.0
                info["one_voice"] = names[whole]
        y, clip_gain = _clip_protect(_from_16k(est, sr, x.shape[0]))
        t2 = time.perf_counter()
        info["levels_db"] = output_levels_db(y / clip_gain, x)
        info.update(reason=None if faces else reason, chunks=n_chunks)
        info.update(seconds_frontend=round(t1 - t0, 3), seconds_model=round(t2 - t1, 3), clip_gain=round(clip_gain, 4))
        self.last_info = info
        return y


# ---------------------------------------------------------------------------------------------
# files (what `avse enhance` and `avse separate` do)
# ---------------------------------------------------------------------------------------------


def _same_file(a: Path, b: Path) -> bool:
    return a.exists() and b.exists() and a.resolve() == b.resolve()


def _check_outputs(outputs: Sequence[Path], inputs: Sequence[Path]) -> None:
    """OutputPathError when an output is a folder or one of the inputs."""
    for out in outputs:
        if out.is_dir():
            raise OutputPathError(f"{out}: is a folder")
        for inp in inputs:
            if _same_file(out, inp):
                raise OutputPathError(f"{out}: output is the input; choose another name")


def read_input_audio(path: str | Path, video: bool, hint: str = "") -> np.ndarray:
    """The sound of an input file, float32 [T] at 16 kHz: an audio file's, or a video's on its frames' timeline.

    A video without an audio track is a MediaError whose message ends in ``hint``.
    """
    from avse.audio.io import load_audio
    from avse.video.shift import video_audio

    if not video:
        return load_audio(path, sample_rate=SAMPLE_RATE)[0]
    x = video_audio(path)
    if x is None:
        raise MediaError(path, "the video has no audio track" + hint)
    return x


def _read_input(path: Path, audio: str | Path | None, video: bool) -> np.ndarray:
    """The audio to process, float32 [T] at 16 kHz: ``audio`` when given, else the input's (a video's on its timeline)."""
    from avse.audio.io import load_audio

    if audio is not None:
        return load_audio(audio, sample_rate=SAMPLE_RATE)[0]
    return read_input_audio(path, video, hint="; give one with --audio")


def _config(chunk_seconds: float | None) -> InferenceConfig:
    """The inference settings for a chunk length: the default overlap (1 s), at most a quarter of the chunk."""
    if chunk_seconds is None:
        return InferenceConfig()
    return InferenceConfig(chunk_seconds=chunk_seconds, overlap_seconds=min(InferenceConfig.overlap_seconds, chunk_seconds / 4))


def enhance_file(
    input_path: str | Path,
    out: str | Path,
    audio: str | Path | None = None,
    model: str | Path = "av",
    fallback: str | Path | None = "audio",
    face: Face = None,
    chunk_seconds: float | None = None,
    progress: Progress = False,
    light_asd: str | Path | None = None,
    atten_lim_db: float | None = ATTEN_LIM_DB,
    postfilter: float | None = POSTFILTER,
    assign: str = "auto",
    separator: str | Path | None = "separate",
    shifts: int = DEFAULT_SHIFTS,
) -> dict[str, Any]:
    """Enhance a video or audio file -> OUT.wav (16-bit PCM, 16 kHz mono) and, for a video, OUT.mp4.

    A video goes through the front end and the audio-visual ``model`` (the
    ``fallback`` when no usable face is found); an audio file through the
    audio-only model. ``audio`` replaces the video's own track (it must start
    with the first video frame). ``out`` ends in .wav or .mp4; the other file
    takes the same stem. OUT.mp4 is the input's video stream copied (no
    re-encoding) with the enhanced audio as AAC. ``light_asd``: the Light-ASD
    checkpoint a model on its embeddings needs, ``atten_lim_db`` the attenuation limit, ``postfilter`` the
    post-filter's strength, ``assign`` and ``separator`` whose output the talker's voice is, ``shifts`` the
    models' runs averaged (all as for ``Enhancer``). The wav is always at 16 kHz,
    the rate the models work at (nothing above 8 kHz survives them). Both files
    are written atomically, together, only when everything succeeded; an
    output that is an input is refused (OutputPathError). Returns the
    enhancer's ``last_info`` plus "input", "video" and "outputs".
    """
    from avse.audio.io import check_media_file, save_wav
    from avse.utils.fs import atomic_path, check_output_folder

    src = Path(input_path)
    out = Path(out)
    if out.suffix.lower() not in (".wav", ".mp4"):
        raise OutputPathError(f"{out}: give an output name ending in .wav (a video input also gets the .mp4 beside it)")
    check_media_file(src)
    check_output_folder(out)
    video = has_video(src)
    if audio is not None and not video:
        raise ConfigError(f"{src} is an audio file: a replacement audio track only goes with a video input")
    if not video and out.suffix.lower() == ".mp4":
        raise OutputPathError(f"{out}: {src} has no video, so the output is a wav; give a name ending in .wav")
    wav = out.with_suffix(".wav")
    mp4 = out.with_suffix(".mp4") if video else None
    outputs = [wav] + ([mp4] if mp4 else [])
    _check_outputs(outputs, [src] + ([Path(audio)] if audio else []))
    cfg = _config(chunk_seconds)
    enhancer = Enhancer.from_pretrained(model, fallback=fallback, config=cfg, progress=progress, light_asd=light_asd,
                                        atten_lim_db=atten_lim_db, postfilter=postfilter, assign=assign, separator=separator,
                                        shifts=shifts)
    if video and enhancer.visual_stream == "light_asd":
        enhancer.light_asd_encoder()  # no checkpoint for the model's visual stream: fail before any work
    if video and enhancer.audio_visual and assign != "av":
        enhancer.blind_separator()  # a separator that cannot be loaded: fail before any work
    x = _read_input(src, audio, video)
    y = enhancer.enhance(x, SAMPLE_RATE, video=src if video else None, face=face)
    with contextlib.ExitStack() as stack:
        tmp_wav = stack.enter_context(atomic_path(wav))
        save_wav(tmp_wav, y, SAMPLE_RATE)
        if mp4 is not None:
            mux_audio(src, y, stack.enter_context(atomic_path(mp4)))
    return {**enhancer.last_info, "input": str(src), "video": video, "outputs": [str(p) for p in outputs]}


def separate_file(
    input_path: str | Path,
    out_dir: str | Path,
    model: str | Path | None = "separate",
    av: str | Path | None = "av",
    chunk_seconds: float | None = None,
    progress: Progress = False,
    assign: str = "auto",
    overlap: bool | str | Path = True,
    speaker: bool | str | Path = False,
    shifts: int = DEFAULT_SHIFTS,
) -> dict[str, Any]:
    """Separate a video or audio file into OUT_DIR/NAME.wav (16 kHz, 16-bit) (+ NAME.mp4 for a video input).

    A video with tracked faces gives face0, face1, ... (left to right: the blind
    model's outputs given to the faces by lip sync, or the audio-visual model
    once per face, as ``assign`` says; see ``Separator``); an audio file or a video without a
    usable face gives the blind model's source0, source1 (or a
    known-speakers model's names). All files are written atomically and
    together; outputs that are the input are refused. Returns the
    separator's ``last_info`` plus "input", "video" and "outputs". ``overlap`` and ``speaker``: the overlap
    detector and speaker encoder of the one-voice check without faces (``Separator``; overlap False: by level alone);
    ``shifts``: the models' runs averaged (``Separator``).
    """
    from avse.audio.io import check_media_file, save_wav
    from avse.utils.fs import atomic_path, check_file_stem, ensure_dir

    src = Path(input_path)
    out_dir = Path(out_dir)
    check_media_file(src)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputPathError(f"{out_dir}: output folder is a file")
    video = has_video(src)
    separator = Separator.from_pretrained(model, av=av, config=_config(chunk_seconds), progress=progress, assign=assign,
                                          overlap=overlap, speaker=speaker, shifts=shifts)
    x = _read_input(src, None, video)
    y = separator.separate(x, SAMPLE_RATE, video=src if video else None)
    names = [check_file_stem(str(n), "output name") for n in separator.last_info["names"]]
    outputs: list[Path] = []
    for name in names:
        outputs.append(out_dir / f"{name}.wav")
        if video:
            outputs.append(out_dir / f"{name}.mp4")
    _check_outputs(outputs, [src])
    ensure_dir(out_dir)
    with contextlib.ExitStack() as stack:
        for i, name in enumerate(names):
            save_wav(stack.enter_context(atomic_path(out_dir / f"{name}.wav")), y[i], SAMPLE_RATE)
            if video:
                mux_audio(src, y[i], stack.enter_context(atomic_path(out_dir / f"{name}.mp4")))
    return {**separator.last_info, "input": str(src), "video": video, "outputs": [str(p) for p in outputs]}


__all__ = [
    "Enhancer",
    "InferenceConfig",
    "PRETRAINED_DIR",
    "SHIPPED",
    "Separator",
    "enhance_file",
    "load_model",
    "model_path",
    "levels_line",
    "talker_source",
    "output_levels_db",
    "read_input_audio",
    "separate_file",
    "to_mono",
]
