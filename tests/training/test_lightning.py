"""Lightning training: the data module's draws and features, the module's losses, fit / resume / DDP end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("lightning")

from avse.data.metadata import target_landmarks_path  # noqa: E402
from avse.errors import ConfigError  # noqa: E402
from avse.models import load_checkpoint  # noqa: E402
from avse.training.data import AvseDataModule  # noqa: E402
from avse.training.losses import neg_si_sdr  # noqa: E402
from avse.training.module import SeparationModule, avse_path, fit  # noqa: E402
from avse.video.landmarks import read_landmarks  # noqa: E402
from avse.video.lipfeat import lip_features  # noqa: E402

SMALL_AVNET = dict(
    n_filters=16, kernel_size=16, bottleneck=8, hidden=16, skip=8, n_blocks=2, n_repeats=1, fusion_block=1, visual_hidden=8
)
SMALL_TASNET = dict(n_filters=16, kernel_size=16, bottleneck=8, hidden=16, skip=8, n_blocks=2, n_repeats=1)


def _config(root, **over):
    data = dict(root=str(root), segment_frames=10, batch_size=1, val_segment_frames=10)
    cfg = dict(model="avnet", model_config=SMALL_AVNET, task="extract", data=data, max_steps=2, log_every_n_steps=1)
    cfg.update(over)
    return cfg


def _draws(ds):
    return [(it["info"]["name"], it["info"]["offset"], it["info"]["SNR"], it["info"]["start_frame"]) for it in ds]


def test_features_are_lip_features_of_the_cropped_frames(tiny_corpus):
    dm = AvseDataModule(tiny_corpus, segment_frames=10, batch_size=2)
    dm.setup("fit")
    for i in range(len(dm.train_set)):
        item = dm.train_set[i]
        lm = read_landmarks(target_landmarks_path(tiny_corpus, "train", item["info"]["target"]))
        start = item["info"]["start_frame"]
        want = np.nan_to_num(lip_features(lm))[start : start + 10]  # [10, 82]
        assert item["features"].shape == (10, 82) and item["lips"].shape == (10, 40, 2)
        np.testing.assert_array_equal(item["features"].numpy(), want)
        np.testing.assert_array_equal(item["lips"].numpy(), lm["lips"][start : start + 10])
    batch = next(iter(dm.train_dataloader()))
    assert batch["mixture"].shape == (2, 6400) and batch["features"].shape == (2, 10, 82)


def test_speed_perturbed_features_are_the_stretched_lip_features(tiny_corpus):
    from avse.data.datasets import frames_for, stretch_frames

    dm = AvseDataModule(tiny_corpus, segment_frames=10, batch_size=2, p_speed=1.0, speed=(0.8, 1.2))
    dm.setup("fit")
    factors = set()
    for i in range(len(dm.train_set)):
        item = dm.train_set[i]
        speed, start = item["info"]["speed"], item["info"]["start_frame"]
        factors.add(speed)
        lm = read_landmarks(target_landmarks_path(tiny_corpus, "train", item["info"]["target"]))
        n0 = frames_for(int(dm.train_set.base.targets[i]["nsamples"]))
        full = np.nan_to_num(lip_features(lm))
        full = np.concatenate([full, np.repeat(full[-1:], max(0, n0 - len(full)), 0)])[:n0]
        stretched = stretch_frames(full, speed, len(full) * 2)
        np.testing.assert_allclose(item["features"].numpy(), stretched[start : start + 10], atol=1e-5)
    assert len(factors) > 1 and all(0.8 <= f <= 1.2 for f in factors)
    assert dm.val_set.base.p_speed == 0.0  # validation is never perturbed


def test_train_draws_follow_the_epoch_and_validation_is_fixed(tiny_corpus):
    dm = AvseDataModule(tiny_corpus, segment_frames=10, batch_size=1)
    dm.setup("fit")
    dm.set_epoch(0)
    e0 = _draws(dm.train_set)
    dm.set_epoch(1)
    e1 = _draws(dm.train_set)
    dm.set_epoch(0)
    assert _draws(dm.train_set) == e0 and e1 != e0
    v0 = _draws(dm.val_set)
    dm.set_epoch(5)
    assert _draws(dm.val_set) == v0 and dm.val_set.base.epoch == 0
    assert dm.val_dataloader().batch_size == 1 and len(dm.val_set) == len(dm.val_set.base)


def test_module_checks_task_against_model_outputs():
    with pytest.raises(ConfigError, match="task"):
        SeparationModule("avnet", SMALL_AVNET, task="denoise")
    with pytest.raises(ConfigError, match="2 output"):
        SeparationModule("avnet", SMALL_AVNET, task="separate")
    with pytest.raises(ConfigError, match="1 output"):
        SeparationModule("tasnet", SMALL_TASNET, task="extract")  # tasnet defaults to 2 sources
    assert SeparationModule("avnet", SMALL_AVNET).audio_visual
    assert not SeparationModule("tasnet", SMALL_TASNET, task="separate").audio_visual


def test_separate_loss_is_permutation_invariant_and_reorders():
    torch.manual_seed(0)
    m = SeparationModule("tasnet", SMALL_TASNET, task="separate")
    tgt, itf = torch.randn(2, 800), torch.randn(2, 800)
    batch = {"mixture": tgt + itf, "target": tgt, "interferer": itf}
    swapped = torch.stack([itf, tgt], dim=1)  # [2, 2, 800], the wrong order
    loss, est = m._loss(swapped, batch)
    torch.testing.assert_close(est, torch.stack([tgt, itf], dim=1))
    assert torch.all(loss < -60.0)  # perfect estimates, whatever the order
    one = SeparationModule("avnet", SMALL_AVNET, task="extract")
    loss1, _ = one._loss(tgt[:, None] * 0.5 + 0.1 * itf[:, None], batch)
    torch.testing.assert_close(loss1, neg_si_sdr(tgt * 0.5 + 0.1 * itf, tgt))


def test_training_step_gives_finite_loss_and_gradients():
    torch.manual_seed(0)
    m = SeparationModule("avnet", SMALL_AVNET, task="extract")
    batch = {"mixture": torch.randn(2, 6400), "target": torch.randn(2, 6400), "interferer": torch.randn(2, 6400)}
    batch["features"] = torch.randn(2, 10, 82)
    assert m(batch).shape == (2, 1, 6400)
    loss = m.training_step(batch, 0)
    loss.backward()
    assert torch.isfinite(loss)
    assert m.model.visual_proj[0].weight.grad.abs().sum() > 0  # the visual stream reaches the loss
    with pytest.raises(ConfigError, match="features"):
        m({"mixture": batch["mixture"]})


def test_fit_writes_loadable_checkpoint_and_resumes(tiny_corpus, tmp_path):
    out = tmp_path / "run"
    path = fit(_config(tiny_corpus), out)
    assert path.name.endswith(".avse.pt") and path.is_file()
    model, info = load_checkpoint(path)
    assert info["model"] == "avnet" and info["config"]["n_filters"] == 16
    assert info["extra"]["global_step"] == 2 and np.isfinite(info["extra"]["metrics"]["val/loss"])
    lightning_ckpt = torch.load(out / "last.ckpt", map_location="cpu", weights_only=False)
    assert lightning_ckpt["global_step"] == 2 and lightning_ckpt["avse"]["model"] == "avnet"
    for key, value in model.state_dict().items():  # the avse file holds the Lightning weights
        torch.testing.assert_close(value, lightning_ckpt["state_dict"][f"model.{key}"])
    assert load_checkpoint(avse_path(out / "last.ckpt"))[1]["extra"]["global_step"] == 2
    assert any((out / "tb").rglob("events.out.tfevents.*"))

    with pytest.raises(ConfigError, match="resume"):
        fit(_config(tiny_corpus), tmp_path / "empty", resume=True)
    path2 = fit(_config(tiny_corpus, max_steps=4), out, resume=True)
    _, info2 = load_checkpoint(path2)
    assert info2["extra"]["global_step"] == 4 and info2["extra"]["epoch"] == 1
    assert torch.load(out / "last.ckpt", map_location="cpu", weights_only=False)["global_step"] == 4
    assert len(list(out.glob("*.avse.pt"))) == len(list(out.glob("*.ckpt"))) == 2  # best + last, old best removed

    # a run folder as init_from: its best checkpoint, not last
    from avse.models import build_model
    from avse.training.module import warm_start

    fresh = build_model("avnet", SMALL_AVNET)
    warm_start(fresh, "avnet", str(out))
    best_model, _ = load_checkpoint(path2)
    for key, value in best_model.state_dict().items():
        torch.testing.assert_close(fresh.state_dict()[key], value)
    (tmp_path / "no_run").mkdir()
    with pytest.raises(ConfigError, match="found 0"):
        warm_start(fresh, "avnet", str(tmp_path / "no_run"))


def test_masker_targets_train_a_blind_separator_and_are_refused_for_lips(tiny_corpus, tmp_path):
    data = dict(root=str(tiny_corpus), segment_frames=10, batch_size=1, val_segment_frames=10, p_masker_target=1.0, p_speech=1.0)
    with pytest.raises(ConfigError, match="p_masker_target.*audio-visual"):
        fit(_config(tiny_corpus, data=data), tmp_path / "av")
    assert not (tmp_path / "av").exists()  # refused before anything is written
    small = dict(n_filters=16, kernel_size=16, bottleneck=8, hidden=16, skip=8, n_blocks=2, n_repeats=1, n_sources=2)
    path = fit(dict(_config(tiny_corpus, data=data), model="tasnet", model_config=small, task="separate"), tmp_path / "sep")
    assert np.isfinite(load_checkpoint(path)[1]["extra"]["metrics"]["val/loss"])
    dm = AvseDataModule(**data)
    dm.setup("fit")
    assert dm.train_set is not None and dm.val_set is not None
    assert any(dm.train_set[i]["info"]["masker_target"] for i in range(len(dm.train_set)))
    assert not any("masker_target" in dm.val_set[i]["info"] for i in range(len(dm.val_set)))  # validation: the targets
    base = dm.train_set.base
    base.p_masker_target = 0.5  # items with and without a masker target batch together
    for epoch in range(50):
        dm.train_set.set_epoch(epoch)
        if len({base.masker_target(i) is None for i in range(len(base))}) == 2:
            break
    assert len({base.masker_target(i) is None for i in range(len(base))}) == 2
    batch = next(iter(torch.utils.data.DataLoader(dm.train_set, batch_size=len(dm.train_set))))
    assert len(batch["info"]["masker_target"]) == len(dm.train_set)


def test_last_checkpoint_is_the_last_even_when_validation_got_worse(tiny_corpus, tmp_path):
    """With lr = 0 the validation loss never improves after the first epoch: last.ckpt must still follow the run."""
    out = tmp_path / "flat"
    fit(_config(tiny_corpus, lr=0.0, max_steps=6), out)  # 2 steps per epoch: validations at steps 2, 4, 6
    last = torch.load(out / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["global_step"] == 6
    assert load_checkpoint(avse_path(out / "last.ckpt"))[1]["extra"]["global_step"] == 6
    best = [p.name for p in out.glob("epoch*.ckpt")]
    assert best == ["epoch000-step0000002.ckpt"]  # the first validation stays the best


def test_keep_checkpoints_keeps_every_validation_and_warm_start_takes_the_best(tiny_corpus, tmp_path):
    """keep_checkpoints -1: one epoch file per validation; a run folder as init_from gives the lowest val/loss."""
    from avse.models import build_model
    from avse.training.module import _val_loss, warm_start

    out = tmp_path / "all"
    fit(_config(tiny_corpus, max_steps=6, keep_checkpoints=-1), out)  # 2 steps per epoch: validations at 2, 4, 6
    kept = sorted(p.name for p in out.glob("epoch*.avse.pt"))
    assert kept == ["epoch000-step0000002.avse.pt", "epoch001-step0000004.avse.pt", "epoch002-step0000006.avse.pt"]
    losses = {p: _val_loss(p) for p in out.glob("epoch*.avse.pt")}
    assert all(np.isfinite(v) for v in losses.values())
    best = min(losses, key=losses.get)
    fresh = build_model("avnet", SMALL_AVNET)
    warm_start(fresh, "avnet", str(out))
    for key, value in load_checkpoint(best)[0].state_dict().items():
        torch.testing.assert_close(fresh.state_dict()[key], value)
    with pytest.raises(ConfigError, match="keep_checkpoints"):
        fit(_config(tiny_corpus, keep_checkpoints=0), tmp_path / "bad")


@pytest.mark.slow
def test_fit_ddp_two_cpu_processes(tiny_corpus, tmp_path):
    cfg = _config(tiny_corpus, accelerator="cpu", devices=2, strategy="ddp_spawn")
    path = fit(cfg, tmp_path / "ddp")
    model, info = load_checkpoint(path)
    assert info["extra"]["global_step"] == 2
    assert all(torch.isfinite(v).all() for v in model.state_dict().values())


def test_cosine_schedule_reaches_lr_min_and_resumes_in_place(tiny_corpus, tmp_path):
    from avse.training.module import cosine_factor

    assert cosine_factor(0, 10, 0.1) == 1.0 and cosine_factor(10, 10, 0.1) == pytest.approx(0.1)
    assert cosine_factor(5, 10, 0.0) == pytest.approx(0.5) and cosine_factor(25, 10, 0.2) == pytest.approx(0.2)
    with pytest.raises(ConfigError, match="max_steps"):
        fit(_config(tiny_corpus, lr_schedule="cosine", max_steps=-1), tmp_path / "no_steps")
    with pytest.raises(ConfigError, match="lr_min"):
        fit(_config(tiny_corpus, lr_schedule="cosine", lr_min=0.1), tmp_path / "floor")
    cfg = dict(lr=1e-3, lr_schedule="cosine", lr_min=1e-4, max_steps=4)
    out = tmp_path / "cos"
    fit(_config(tiny_corpus, **dict(cfg, max_steps=4)), out)
    ckpt = torch.load(out / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["lr_schedulers"][0]["last_epoch"] == 4
    assert ckpt["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(1e-4)  # the end of the cosine
    # resumed with more steps: the schedule goes on from step 4 (not from 0) over the new total, to lr_min again
    fit(_config(tiny_corpus, **dict(cfg, max_steps=6)), out, resume=True)
    ckpt = torch.load(out / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 6 and ckpt["lr_schedulers"][0]["last_epoch"] == 6
    assert ckpt["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(1e-4)


@pytest.mark.parametrize("synthesis", ["hop", "causal"])
def test_low_latency_stage_refits_the_decoder_to_the_overlap_model(tiny_corpus, tmp_path, synthesis):
    """init_from an "overlap" run into a "hop" or "causal" recipe: the decoder is fitted by least squares."""
    from avse.models import build_model
    from avse.training.module import refit_decoder, warm_start

    first = fit(_config(tiny_corpus, max_steps=2), tmp_path / "overlap")
    teacher, _ = load_checkpoint(first)
    hop_cfg = {**SMALL_AVNET, "synthesis": synthesis}
    folded = build_model("avnet", hop_cfg)
    ckpt = warm_start(folded, "avnet", str(first))
    refitted = build_model("avnet", hop_cfg)
    refitted.load_state_dict(folded.state_dict())
    dm = AvseDataModule(root=str(tiny_corpus), segment_frames=10, batch_size=1, val_segment_frames=10)
    assert refit_decoder(refitted, ckpt, dm, batches=4) > 0
    assert not torch.equal(refitted.decoder.weight, folded.decoder.weight)
    assert refit_decoder(refitted, {**ckpt, "config": hop_cfg}, dm) is None  # a hop source: nothing to refit
    # on the corpus' mixtures the refitted hop model is nearer the overlap model than the folded one
    batch = next(iter(dm.train_dataloader()))
    visual = batch["features"].transpose(1, 2)
    with torch.inference_mode():
        want = teacher(batch["mixture"], visual)
        err_fit = (refitted.eval()(batch["mixture"], visual) - want).pow(2).mean()
        err_fold = (folded.eval()(batch["mixture"], visual) - want).pow(2).mean()
    assert err_fit < 0.5 * err_fold, (float(err_fit), float(err_fold))
    # and fit() does it by itself for a hop recipe that starts from an overlap run
    path = fit(_config(tiny_corpus, model_config=hop_cfg, init_from=str(first), max_steps=1), tmp_path / "hop")
    assert load_checkpoint(path)[1]["config"]["synthesis"] == synthesis
