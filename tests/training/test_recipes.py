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
    suffixes = ("_control", "_lips", "_light_asd", "_room", "_impacts", "_quiet", "_speed", "_more_voices", "_more_noise", "_voices",
                "_reuse", "_clean", "_nodelay", "_refine", "_noise", "_continue", "_long", "_denoise", "_masker_targets",
                "_many", "_band", "_alone", "_union", "_mixed", "_spectral", "_noise_only", "_deep", "_recognised", "_all", "_sky",
                "_crowd", "_mbrola")
    while stem.endswith(suffixes):  # a stage's name is its model's and any of these, in any order
        stem = next(stem.removesuffix(s) for s in suffixes if stem.endswith(s))
    model = build_model(cfg.model, cfg.model_config)
    if cfg.init_from.startswith("runs/"):
        base = yaml.safe_load(path.read_text()).get("base")
        if base is not None:  # stage 2 starts from its base recipe's run (or, a variant, from where its base started)
            first = load_recipe(path.parent / base)
            assert first["model"] == cfg.model
            # the same layers; only the decoder's synthesis may change (an overlap decoder loads folded into a hop
            # one), the visual input where init_skip leaves its layer new, and the depth where init_grow adds blocks
            free = {"synthesis"} | ({"visual_channels", "visual_stream"} if cfg.init_skip else set())
            free |= {"n_repeats"} if cfg.init_grow else set()
            assert {k: v for k, v in first["model_config"].items() if k not in free} == {
                k: v for k, v in cfg.model_config.items() if k not in free
            }
            runs = {f"runs/real_{Path(base).stem}", str(first.get("init_from"))}
            assert any(cfg.init_from == run or (cfg.init_from.startswith(f"{run}/") and cfg.init_from.endswith(".avse.pt"))
                       for run in runs), cfg.init_from
        else:  # stage 1 starts from the pretrained recipe's run
            first = load_recipe(CONFIGS / "pretrained" / f"{stem}.yaml")
            assert first["model"] == cfg.model and cfg.init_from == f"runs/{stem}"
        name = stem.replace("_", "-")
        if cfg.init_skip or cfg.init_grow:  # the shipped model's weights fit all but the new layers
            warm_start(model, cfg.model, name, cfg.init_skip, cfg.init_grow)
        else:
            shipped, _ = load_model(name)
            model.load_state_dict(shipped.state_dict())  # strict: the same layers and sizes
        return
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    warm_start(model, cfg.model, cfg.init_from, cfg.init_skip, cfg.init_grow)
    shipped, _ = load_model(cfg.init_from)
    theirs = shipped.state_dict()
    for name, a in model.state_dict().items():  # every weight the shipped model's, but those init_skip names
        if name.startswith(tuple(cfg.init_skip)):
            assert torch.equal(a, fresh[name]), name
        elif name in theirs:
            assert torch.equal(a, theirs[name]), name
        else:  # a layer init_grow added: what it gives the skips and the residual path starts at zero
            assert cfg.init_grow, name
            if ".skip." in name or ".residual." in name:
                assert not torch.any(a), name


def test_warm_start_skip_keeps_the_named_new_layers_and_loads_the_rest():
    """A model on another visual stream (128 inputs instead of 82) starts from "av": only its input layer is new."""
    import torch

    from avse.api import model_path
    from avse.errors import ConfigError
    from avse.models.checkpoint import read_checkpoint
    from avse.training.module import warm_start

    av = read_checkpoint(model_path("av"))
    cfg = {**av["config"], "visual_channels": 128, "visual_stream": "light_asd"}
    model = build_model("avnet", cfg)
    with pytest.raises(ConfigError, match="do not fit"):
        warm_start(model, "avnet", "av")
    with pytest.raises(ConfigError, match="names no weight"):
        warm_start(model, "avnet", "av", ["visual_frontend.no_such_layer"])
    model = build_model("avnet", cfg)  # the failed loads above may have copied some weights in
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    warm_start(model, "avnet", "av", ["visual_frontend.in_proj"])
    state = model.state_dict()
    new = [k for k in state if not torch.equal(state[k], av["state_dict"].get(k, torch.empty(0)))]
    assert sorted(new) == ["visual_frontend.in_proj.bias", "visual_frontend.in_proj.weight"]  # both kept fresh
    assert torch.equal(state["visual_frontend.in_proj.bias"], fresh["visual_frontend.in_proj.bias"])
    assert torch.equal(state["visual_frontend.in_proj.weight"], fresh["visual_frontend.in_proj.weight"])
    with pytest.raises(ConfigError, match="init_skip"):
        TrainConfig(init_skip=["visual_frontend.in_proj"])


def test_warm_start_refuses_another_model():
    from avse.errors import ConfigError
    from avse.training.module import warm_start

    model = build_model("tasnet", {"n_filters": 32, "bottleneck": 16, "hidden": 32, "skip": 16, "n_blocks": 2, "n_repeats": 1})
    with pytest.raises(ConfigError, match="holds model 'avnet'"):
        warm_start(model, "tasnet", "av")
    with pytest.raises(ConfigError, match="do not fit"):
        warm_start(model, "tasnet", "audio")


def test_warm_start_grow_adds_repeats_that_start_as_no_ops(tmp_path):
    """init_grow: a Conv-TasNet with more repeats of the same blocks starts out computing exactly what its checkpoint
    did; then every new weight trains (the new blocks' skip convs get a gradient at once)."""
    import torch

    from avse.errors import ConfigError
    from avse.models.checkpoint import save_checkpoint
    from avse.training.module import warm_start

    small = {"n_filters": 32, "kernel_size": 16, "bottleneck": 16, "hidden": 24, "skip": 16, "n_blocks": 3, "n_repeats": 1}
    torch.manual_seed(0)
    source = build_model("tasnet", small)
    path = save_checkpoint(tmp_path / "small.avse.pt", source, "tasnet", small)
    deep = build_model("tasnet", {**small, "n_repeats": 3})
    with pytest.raises(ConfigError, match="do not fit"):
        warm_start(deep, "tasnet", str(path))  # without grow, the new blocks are refused
    warm_start(deep, "tasnet", str(path), grow=True)
    source.eval(), deep.eval()
    x = torch.randn(2, 4000)
    with torch.no_grad():
        torch.testing.assert_close(deep(x), source(x), rtol=0, atol=1e-6)
    state = deep.state_dict()
    assert torch.count_nonzero(state["blocks.2.residual.weight"]) == 0  # the old last block's new residual conv
    assert torch.count_nonzero(state["blocks.5.skip.weight"]) == 0 and torch.count_nonzero(state["blocks.5.expand.0.weight"]) > 0
    deep.train()
    deep(x).pow(2).mean().backward()
    assert deep.blocks[5].skip.weight.grad.abs().sum() > 0
    for other in ({**small, "n_blocks": 2, "n_repeats": 3}, {**small, "n_repeats": 1}):
        with pytest.raises(ConfigError, match="init_grow"):
            warm_start(build_model("tasnet", other), "tasnet", str(path), grow=True)
    with pytest.raises(ConfigError, match="init_grow"):
        TrainConfig(init_grow=True)
