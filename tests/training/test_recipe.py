"""Recipes, `avse train` and `avse info`."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from avse.cli import main
from avse.errors import ConfigError, MetadataError
from avse.training.recipe import load_recipe

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("name", ["enhance", "extract", "separate"])
def test_shipped_recipes_are_valid_train_configs(name):
    from avse.config import override
    from avse.training.module import TrainConfig

    cfg = override(TrainConfig(), load_recipe(CONFIGS / f"{name}.yaml"))
    assert cfg.task == name and cfg.data["root"]


def test_set_overrides_nested_keys_with_yaml_values(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"model": "avnet", "data": {"root": "x", "batch_size": 8}}))
    cfg = load_recipe(path, ["data.batch_size=16", "data.snr_noise=[-3, 3]", "lr=2e-4", "model_config.causal=true"])
    assert cfg["data"] == {"root": "x", "batch_size": 16, "snr_noise": [-3, 3]}
    assert cfg["lr"] == 2e-4 and cfg["model_config"] == {"causal": True}
    with pytest.raises(ConfigError, match="key=value"):
        load_recipe(path, ["lr"])
    with pytest.raises(ConfigError, match="not a group"):
        load_recipe(path, ["model.x=1"])


def test_bad_recipes_are_one_line_errors(tmp_path):
    with pytest.raises(MetadataError, match="no such recipe"):
        load_recipe(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed")
    with pytest.raises(MetadataError, match="not valid YAML"):
        load_recipe(bad)


def test_a_recipe_can_start_from_a_base_recipe(tmp_path):
    (tmp_path / "a.yaml").write_text(yaml.safe_dump({"model": "avnet", "lr": 1e-3, "data": {"root": "x", "batch_size": 8}}))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.yaml").write_text(yaml.safe_dump({"base": "../a.yaml", "lr": 3e-4, "data": {"batch_size": 4}}))
    cfg = load_recipe(tmp_path / "sub" / "b.yaml", ["data.root=y"])
    assert cfg == {"model": "avnet", "lr": 3e-4, "data": {"root": "y", "batch_size": 4}}  # merged group by group
    (tmp_path / "c.yaml").write_text("base: d.yaml\n")
    (tmp_path / "d.yaml").write_text("base: c.yaml\n")
    with pytest.raises(MetadataError, match="circle"):
        load_recipe(tmp_path / "c.yaml")
    (tmp_path / "e.yaml").write_text("base: gone.yaml\n")
    with pytest.raises(MetadataError, match="the base of"):
        load_recipe(tmp_path / "e.yaml")


@pytest.mark.slow
def test_train_then_info_from_the_command_line(tiny_corpus, tmp_path, capsys):
    out = tmp_path / "run"
    sets = [
        f"data.root={tiny_corpus}", "data.val_split=dev", "max_steps=2", "data.batch_size=2", "data.segment_frames=20",
        "data.num_workers=0", "model_config.n_blocks=2", "model_config.n_repeats=1", "model_config.fusion_block=1",
    ]
    args = ["train", str(CONFIGS / "extract.yaml"), "--out", str(out)]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 0
    assert (out / "last.avse.pt").is_file()
    capsys.readouterr()
    assert main(["info", str(out / "last.avse.pt")]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert "avnet" in first and "M parameters" in first and "GMAC" in first
