"""Self-describing checkpoints: a plain dict (name, config, rates, versions, weights) that loads with weights_only=True."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from avse import __version__
from avse.errors import ConfigError, MediaError, first_line
from avse.models.base import SeparationModel
from avse.models.registry import build_model, model_class
from avse.utils.fs import atomic_path

FORMAT = 1
_REQUIRED = ("format", "model", "config", "state_dict")


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters of ``model`` (only those with ``requires_grad`` when ``trainable_only``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def save_checkpoint(
    path: str | Path,
    model: SeparationModel,
    name: str,
    config: Any,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``model``'s weights with everything needed to rebuild it to ``path`` (atomically).

    ``name`` is the registered model name and ``config`` its ``Config``
    dataclass (or the equivalent plain dict). The rates and the rest of the
    model's interface (``SeparationModel.interface``) are asked of the model
    itself. ``extra`` (plain values only:
    numbers, strings, lists, dicts, tensors) is stored under ``"extra"``, e.g.
    the epoch or a validation score. Returns ``path``.
    """
    cls = model_class(name)
    if not isinstance(model, cls):
        raise ConfigError(f"model is a {type(model).__name__}, but {name!r} names {cls.__name__}")
    cfg = asdict(config) if is_dataclass(config) and not isinstance(config, type) else dict(config)
    ckpt: dict[str, Any] = {
        "format": FORMAT,
        "model": name,
        "config": cfg,
        "sample_rate": model.sample_rate,
        "video_fps": model.video_fps,
        "interface": model.interface(),
        "versions": {"avse": __version__, "torch": str(torch.__version__)},
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    if extra is not None:
        ckpt["extra"] = dict(extra)
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)
    return path


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load and check the checkpoint dict at ``path`` (weights_only=True, tensors on CPU), without building a model."""
    path = Path(path)
    if not path.is_file():
        raise MediaError(path, "no such checkpoint file")
    if path.stat().st_size == 0:
        raise MediaError(path, "empty file (0 bytes), not a checkpoint")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load fails in many ways on foreign or truncated files
        raise MediaError(path, f"not a readable checkpoint ({first_line(err)})") from None
    if not isinstance(ckpt, dict) or any(key not in ckpt for key in _REQUIRED):
        raise MediaError(path, "not an avse checkpoint (expected a dict with format, model, config and state_dict)")
    if ckpt["format"] != FORMAT:
        raise ConfigError(f"{path}: checkpoint format {ckpt['format']!r} is not supported (this avse reads format {FORMAT})")
    return ckpt


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[SeparationModel, dict[str, Any]]:
    """Rebuild the model saved at ``path``: returns ``(model in eval mode, info)``.

    ``info`` is the checkpoint dict without its ``state_dict`` (model name,
    config, sample rate, fps, versions, extra), its ``interface`` the rebuilt
    model's (``SeparationModel.interface``; older checkpoints lack the key). Raises MediaError for a
    missing or non-avse file or weights that do not fit the model, and
    ConfigError for an unknown model name, config key or format.
    """
    ckpt = read_checkpoint(path)
    model = build_model(ckpt["model"], ckpt["config"])
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as err:
        raise MediaError(path, f"weights do not fit model {ckpt['model']!r}: {first_line(err, with_type=False)}") from None
    model.to(map_location).eval()
    info = {k: v for k, v in ckpt.items() if k != "state_dict"}
    info["interface"] = model.interface()
    return model, info


def small_config(cls: Any, raw: Mapping[str, Any], where: str, what: str) -> Any:
    """A small model's config dataclass ``cls`` from a recipe's or a checkpoint's mapping: its "channels" list becomes
    a tuple of ints; ConfigError "WHERE: unknown WHAT option(s) ..." naming unknown keys."""
    from dataclasses import fields

    unknown = sorted(set(raw) - {f.name for f in fields(cls)})
    if unknown:
        raise ConfigError(f"{where}: unknown {what} option(s) {', '.join(unknown)}")
    d = dict(raw)
    if "channels" in d:
        d["channels"] = tuple(int(c) for c in d["channels"])
    return cls(**d)


class SmallAudioModel(nn.Module):
    """Base of the small 16 kHz helper models that ship beside the separators (the overlapped speech detector, the
    speaker encoder): their checkpoints are the format above with float16 weights, a few hundred KB each.

    A subclass sets ``MODEL_NAME`` (the checkpoint's "model"), ``KIND`` (what it is, with its article, for messages), ``PRETRAINED`` (the shipped file), ``TRAIN_HINT``
    (the command that trains one, for the error when none is there) and ``CONFIG`` (its config dataclass, with a
    ``from_mapping(raw, where)`` classmethod), keeps its config in ``self.cfg`` and may add to ``interface()``.
    """

    MODEL_NAME: str = ""
    KIND: str = "a model"
    PRETRAINED: Path = Path()
    TRAIN_HINT: str = ""
    CONFIG: Any = None
    SAMPLE_RATE = 16000

    def __init__(self, cfg: Any = None) -> None:
        super().__init__()
        self.cfg: Any = cfg
        self.extra: dict[str, Any] = {}  # a loaded checkpoint's extra: recipe, epoch, validation scores

    def interface(self) -> dict[str, Any]:
        """What a caller must feed the model besides its config (rates, frame sizes)."""
        return {}

    def checkpoint(self, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The self-describing checkpoint dict (name, config, rate, interface, versions, float16 weights, ``extra``)."""
        return {"format": FORMAT, "model": self.MODEL_NAME, "config": asdict(self.cfg), "sample_rate": self.SAMPLE_RATE,
                "interface": self.interface(), "versions": {"avse": __version__, "torch": str(torch.__version__)},
                "state_dict": {k: (v.half() if v.is_floating_point() else v).detach().cpu().clone()
                               for k, v in self.state_dict().items()},
                "extra": dict(extra or {})}

    def save(self, path: str | Path, extra: Mapping[str, Any] | None = None) -> Path:
        """Write ``checkpoint(extra)`` to ``path`` atomically -> path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            torch.save(self.checkpoint(extra), tmp)
        return path

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None) -> Any:
        """The shipped model (``path`` None) or a saved one, in eval mode; ``extra`` holds the checkpoint's extra
        (recipe, epoch, validation scores). MediaError for a missing or foreign file."""
        where = cls.PRETRAINED if path is None else Path(path)
        kind = cls.KIND.split(" ", 1)[1]
        if not where.is_file():
            raise MediaError(where, f"no {kind} there (train one: {cls.TRAIN_HINT})")
        ckpt = read_checkpoint(where)
        if ckpt["model"] != cls.MODEL_NAME:
            raise MediaError(where, f"holds a {ckpt['model']!r} model, not {cls.KIND}")
        model = cls(cls.CONFIG.from_mapping(ckpt["config"], str(where)))
        try:
            model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()})
        except RuntimeError as err:
            raise MediaError(where, f"weights do not fit {cls.KIND}: {first_line(err, with_type=False)}") from None
        model.extra = dict(ckpt.get("extra") or {})
        return model.eval()
