"""Training recipes: a YAML file of TrainConfig fields, with ``--set key.sub=value`` overrides on top."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from avse.errors import ConfigError, MetadataError, first_line


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``, group by group (a mapping in both is merged, anything else replaced)."""
    out = dict(base)
    for key, value in top.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _read(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """One recipe file with its ``base`` chain resolved."""
    if not path.is_file():
        raise MetadataError(path, "no such recipe file" if not seen else f"no such recipe file (the base of {seen[-1]})")
    if path.resolve() in seen:
        raise MetadataError(path, "recipes name each other as base in a circle")
    try:
        cfg = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise MetadataError(path, f"not valid YAML ({first_line(err, with_type=False)})") from None
    if not isinstance(cfg, dict):
        raise MetadataError(path, "a recipe is a mapping of options")
    base = cfg.pop("base", None)
    if base is None:
        return cfg
    if not isinstance(base, str):
        raise MetadataError(path, f"base must be the path of another recipe, got {base!r}")
    return _merge(_read(path.parent / base, seen + (path.resolve(),)), cfg)


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Read a YAML recipe and apply ``overrides`` ("a.b=value", value parsed as YAML) -> config dict.

    ``base: OTHER.yaml`` in a recipe starts from that recipe (a path relative
    to this one's folder; chains allowed) and merges this one's options over
    it, group by group.
    """
    cfg = _read(Path(path))
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. data.batch_size=16")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        if isinstance(value, str):  # YAML 1.1 reads "2e-4" as text; a number is meant
            try:
                value = float(value)
            except ValueError:
                pass
        node = cfg
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: {part!r} is not a group of options")
            node = child
        node[parts[-1]] = value
    return cfg


def model_summary(checkpoint: str | Path, seconds: float = 1.0) -> dict[str, Any]:
    """Describe a checkpoint: model, config, interface, parameters and multiply-accumulates per ``seconds`` of audio."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from avse.models import count_parameters, load_checkpoint

    model, info = load_checkpoint(checkpoint)
    t = int(seconds * model.sample_rate)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.estimates(torch.zeros(1, t))  # an audio-visual model gets its all-zero visual stream
    return {
        "model": info["model"],
        "config": info["config"],
        "interface": model.interface(),
        "parameters": count_parameters(model),
        "macs_per_second": int(counter.get_total_flops() // 2 / seconds),
        "sample_rate": model.sample_rate,
        "versions": info.get("versions", {}),
        "extra": info.get("extra", {}),
    }
