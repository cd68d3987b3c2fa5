"""Every recipe in configs/ is a valid training config whose model builds; the shipped models' recipes are consistent."""

from pathlib import Path

import pytest

from avse.config import override
from avse.models import build_model, count_parameters
from avse.training.module import TASKS, TrainConfig
from avse.training.recipe import load_recipe

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
RECIPES = sorted(CONFIGS.glob("*.yaml")) + sorted((CONFIGS / "pretrained").glob("*.yaml")) + sorted((CONFIGS / "real").glob("*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_recipe_is_a_train_config_whose_model_builds(path):
    cfg = override(TrainConfig(), load_recipe(path))
    assert cfg.task in TASKS
    model = build_model(cfg.model, cfg.model_config)
    assert count_parameters(model) > 0
    outputs = getattr(model.cfg, "n_sources", 1)
    assert outputs == (2 if cfg.task in ("separate", "known") else 1)
    if "root" in cfg.data:  # a corpus: every data option is one the data module takes
        import inspect

        from avse.training.data import AvseDataModule

        assert set(cfg.data) <= set(inspect.signature(AvseDataModule.__init__).parameters)


def test_shipped_audio_only_model_has_the_size_of_the_audio_visual_one():
    """The audio-only reference is "the same size" as the AV model: within 3 % of its parameters."""
    sizes = {}
    for name in ("av", "av_causal", "audio"):
        cfg = load_recipe(CONFIGS / "pretrained" / f"{name}.yaml")
        sizes[name] = count_parameters(build_model(cfg["model"], cfg["model_config"]))
    assert sizes["av"] == sizes["av_causal"]
    assert abs(sizes["audio"] - sizes["av"]) / sizes["av"] < 0.03
    av = load_recipe(CONFIGS / "pretrained" / "av.yaml")
    for name in ("av_causal", "audio"):
        other = load_recipe(CONFIGS / "pretrained" / f"{name}.yaml")
        assert other["data"] == av["data"] and other["max_steps"] == av["max_steps"] and other["lr"] == av["lr"]


@pytest.mark.parametrize("path", sorted((CONFIGS / "real").glob("*.yaml")), ids=lambda p: p.stem)
def test_real_recipe_warm_start_fits_its_shipped_model(path):
    """A real recipe starts from weights with its model's layers: a shipped model, or the run of an earlier stage.

    Stages chain: configs/pretrained/NAME.yaml -> configs/real/NAME.yaml (init_from runs/NAME) ->
    configs/real/NAME_refine.yaml (base NAME.yaml, init_from runs/real_NAME) [-> configs/real/NAME_noise.yaml (base
    NAME_refine.yaml, init_from runs/real_NAME_refine's last checkpoint)] [-> configs/real/NAME_nodelay.yaml (base
    NAME_noise.yaml, the decoder's synthesis changed)] [-> configs/real/NAME_clean.yaml (more clean items; base
    NAME_noise.yaml, or NAME.yaml where stage 2 shipped)] [-> configs/real/NAME_speed.yaml (speed-perturbed voices) or
    NAME_voices.yaml (every real voice in train); base NAME_clean.yaml, from one of its checkpoints] [->
    configs/real/NAME_quiet.yaml (more clean items again) or NAME_clean.yaml (clean items for a separator); base
    NAME_voices.yaml, from its last checkpoint]. Run folders exist
    only where the stages were trained; the shipped model of the same name came out of that chain, so its weights
    must fit.
    """
    import torch
    import yaml

    from avse.api import load_model
    from avse.training.module import warm_start

    cfg = override(TrainConfig(), load_recipe(path))
    if cfg.init_from is None:
        pytest.skip("recipe trains from scratch")
    stem = path.stem
    for suffix in ("_quiet", "_speed", "_voices", "_reuse", "_clean", "_nodelay", "_refine", "_noise"):
        stem = stem.removesuffix(suffix)
    model = build_model(cfg.model, cfg.model_config)
    if cfg.init_from.startswith("runs/"):
        base = yaml.safe_load(path.read_text()).get("base")
        if base is not None:  # stage 2 starts from its base recipe's run
            first = load_recipe(path.parent / base)
            assert first["model"] == cfg.model
            # the same layers; only the decoder's synthesis may change (an overlap decoder loads folded into a hop one)
            assert {k: v for k, v in first["model_config"].items() if k != "synthesis"} == {
                k: v for k, v in cfg.model_config.items() if k != "synthesis"
            }
            run = f"runs/real_{Path(base).stem}"
            assert cfg.init_from == run or (cfg.init_from.startswith(f"{run}/") and cfg.init_from.endswith(".avse.pt"))
        else:  # stage 1 starts from the pretrained recipe's run
            first = load_recipe(CONFIGS / "pretrained" / f"{stem}.yaml")
            assert first["model"] == cfg.model and cfg.init_from == f"runs/{stem}"
        shipped, _ = load_model(stem.replace("_", "-"))
        model.load_state_dict(shipped.state_dict())  # strict: the same layers and sizes
        return
    warm_start(model, cfg.model, cfg.init_from)
    shipped, _ = load_model(cfg.init_from)
    for (name, a), b in zip(model.state_dict().items(), shipped.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_warm_start_refuses_another_model():
    from avse.errors import ConfigError
    from avse.training.module import warm_start

    model = build_model("tasnet", {"n_filters": 32, "bottleneck": 16, "hidden": 32, "skip": 16, "n_blocks": 2, "n_repeats": 1})
    with pytest.raises(ConfigError, match="holds model 'avnet'"):
        warm_start(model, "tasnet", "av")
    with pytest.raises(ConfigError, match="do not fit"):
        warm_start(model, "tasnet", "audio")
