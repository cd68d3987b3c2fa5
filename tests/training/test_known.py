"""Two known speakers: fixed-order loss, speech windows, the mixing dataset, folder errors, fit and the recipe."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch

pytest.importorskip("lightning")

from torch.utils.data import DataLoader  # noqa: E402

from avse.data import known as kn  # noqa: E402
from avse.data.known import (  # noqa: E402
    FRAME,
    MemoryBudget,
    RawAudio,
    Recording,
    Track,
    active_threshold,
    read_folder,
    speech_starts,
    split_recordings,
)
from avse.errors import ConfigError, MediaError  # noqa: E402
from avse.models import load_checkpoint  # noqa: E402
from avse.training.known import KnownSpeakersDataModule  # noqa: E402
from avse.training.losses import neg_si_sdr  # noqa: E402
from avse.training.module import SeparationModule, fit  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
SMALL_TASNET = dict(n_filters=16, kernel_size=16, bottleneck=8, hidden=16, skip=8, n_blocks=2, n_repeats=1)


@pytest.fixture(scope="module")
def folders(tiny_corpus, tmp_path_factory) -> dict[str, Path]:
    """Two speakers' folders from the tiny corpus (spk005: a wav and a 44.1 kHz stereo flac; spk006: two wavs) and noise."""
    root = tmp_path_factory.mktemp("known")
    a, b, noise = root / "spk005", root / "spk006", root / "noise"
    for d in (a, b, noise):
        d.mkdir()
    wav_a = sorted((tiny_corpus / "dev" / "targets").glob("spk005_*.wav"))
    shutil.copy(wav_a[0], a / wav_a[0].name)
    x, sr = sf.read(wav_a[1], dtype="float32")
    y = soxr.resample(x, sr, 44100)
    sf.write(a / (wav_a[1].stem + ".flac"), np.stack([y, 0.5 * y], axis=1), 44100)  # stereo, another rate and format
    for p in sorted((tiny_corpus / "dev" / "interferers" / "speech").glob("spk006_*.wav")):
        shutil.copy(p, b / p.name)
    for p in sorted((tiny_corpus / "dev" / "interferers" / "noise").glob("*.wav")):
        shutil.copy(p, noise / p.name)
    (a / ".DS_Store").write_bytes(b"\0\1")  # hidden files are not recordings
    return {"a": a, "b": b, "noise": noise}


def _dm(folders, **over) -> KnownSpeakersDataModule:
    opts = dict(segment_seconds=1.0, batch_size=2, val_items=3, items_per_epoch=6, seed=3)
    opts.update(over)
    dm = KnownSpeakersDataModule(folders["a"], folders["b"], **opts)
    dm.setup("fit")
    return dm


def _rec(name: str, x: np.ndarray) -> Recording:
    return Recording(Path(name), np.asarray(x, dtype=np.float32))


def _db(x: torch.Tensor) -> float:
    return 10.0 * float(torch.log10(x.double().pow(2).mean()))


# --------------------------------------------------------------------------- the loss


def test_known_loss_keeps_the_output_order():
    torch.manual_seed(0)
    tgt, itf = torch.randn(2, 800), torch.randn(2, 800)
    batch = {"mixture": tgt + itf, "target": tgt, "interferer": itf}
    right, swapped = torch.stack([tgt, itf], 1), torch.stack([itf, tgt], 1)  # [2, 2, 800]
    m = SeparationModule("tasnet", SMALL_TASNET, task="known")
    loss_right, est = m._loss(right, batch)
    loss_swapped, est_swapped = m._loss(swapped, batch)
    assert torch.all(loss_right < -60.0)
    torch.testing.assert_close(loss_swapped, (neg_si_sdr(itf, tgt) + neg_si_sdr(tgt, itf)) / 2)
    assert torch.all(loss_swapped > 10.0)  # a swap costs: output 0 must be the target
    assert est_swapped is swapped  # never reordered
    pit = SeparationModule("tasnet", SMALL_TASNET, task="separate")
    torch.testing.assert_close(pit._loss(swapped, batch)[0], pit._loss(right, batch)[0])  # PIT would not notice


def test_known_task_needs_two_outputs_and_matching_names():
    with pytest.raises(ConfigError, match="2 output"):
        SeparationModule("tasnet", {**SMALL_TASNET, "n_sources": 1}, task="known")
    with pytest.raises(ConfigError, match="speaker name"):
        SeparationModule("tasnet", SMALL_TASNET, task="known", speakers=["only one"])
    assert SeparationModule("tasnet", SMALL_TASNET, task="known", speakers=["a", "b"]).speakers == ["a", "b"]


# --------------------------------------------------------------------------- speech windows and tracks


def test_speech_starts_exact_on_a_tiny_level_track():
    levels = np.array([-100.0] * 10 + [-10.0] * 5 + [-100.0] * 10, dtype=np.float32)  # speech in frames 10..14
    assert active_threshold(levels, 30.0) == pytest.approx(-40.0)
    assert active_threshold(np.full(4, -120.0), 30.0) == np.inf  # all silent: nothing counts
    starts = speech_starts(levels, window_frames=4, threshold_db=-40.0, min_active=0.5)
    np.testing.assert_array_equal(starts, np.arange(8, 14) * FRAME)  # windows holding >= 2 of the 5 speech frames
    assert speech_starts(levels, 4, -40.0, 1.0).tolist() == [f * FRAME for f in (10, 11)]
    assert speech_starts(np.array([-10.0, -10.0]), 4, -40.0, 0.5).tolist() == [0]  # shorter than a window
    assert speech_starts(np.array([-10.0]), 4, -40.0, 0.5).size == 0


def test_track_lays_recordings_end_to_end_on_the_frame_grid():
    r1, r2 = _rec("one.wav", np.arange(1, 501)), _rec("two.wav", -np.arange(1, 701))
    track = Track([(r1, 0, 500), (r2, 100, 700)])
    assert len(track) == 2 * FRAME + 2 * FRAME and track.levels.shape == (4,)  # 500 -> 640, 600 -> 640
    out = track.read(400, 400)  # [400, 800): end of one, its padding, start of two
    np.testing.assert_array_equal(out[:100], np.arange(401, 501))
    np.testing.assert_array_equal(out[100:240], 0.0)
    np.testing.assert_array_equal(out[240:], -np.arange(101, 261))
    np.testing.assert_array_equal(track.read(1200, 200)[:40], -np.arange(661, 701))
    np.testing.assert_array_equal(track.read(1200, 200)[40:], 0.0)  # its padding, then past the end
    np.testing.assert_allclose(track.levels[0], 10 * np.log10(np.mean(np.arange(1.0, 321) ** 2) + 1e-12), rtol=1e-6)


def test_split_recordings_is_deterministic_and_splits_one_file_in_time():
    recs = [_rec(f"take{i}.wav", np.ones(1000)) for i in range(5)]
    train, val = split_recordings(recs, 0.4, segment=640)
    assert len(val) == 2 and len(train) == 3
    assert {r.path for r, _, _ in train} | {r.path for r, _, _ in val} == {r.path for r in recs}
    train2, val2 = split_recordings(recs[::-1], 0.4, segment=640)
    assert {r.path for r, _, _ in val2} == {r.path for r, _, _ in val}
    assert len(split_recordings(recs[:2], 0.1, segment=640)[1]) == 1  # at least one file each
    one = _rec("debate.mp3", np.zeros(160_000))  # 10 s
    train, val = split_recordings([one], 0.1, segment=48_000)
    assert train == [(one, 0, 112_000)] and val == [(one, 112_000, 160_000)]  # the last 3 s (one segment > 10 %)
    train, val = split_recordings([one], 0.5, segment=640)
    assert train == [(one, 0, 80_000)] and val == [(one, 80_000, 160_000)]
    with pytest.raises(MediaError, match="too short"):
        split_recordings([_rec("blip.wav", np.zeros(300))], 0.1, segment=640)
    with pytest.raises(ConfigError, match="val_fraction"):
        split_recordings(recs, 1.0, segment=640)


# --------------------------------------------------------------------------- the dataset


def test_items_are_float32_windows_and_the_mixture_is_their_sum(folders):
    dm = _dm(folders, noise=folders["noise"], p_noise=0.5, level_db=(-3.0, 3.0), snr_noise=(5.0, 10.0))
    assert dm.speakers == ["spk005", "spk006"] and dm.segment == 16_000
    n_noisy = 0
    for ds in (dm.train_set, dm.val_set):
        for i in range(len(ds)):
            item = ds[i]
            assert set(item) == {"mixture", "target", "interferer", "noise", "info"}
            for k in ("mixture", "target", "interferer", "noise"):
                assert item[k].dtype == torch.float32 and item[k].shape == (16_000,)
            torch.testing.assert_close(item["mixture"], item["target"] + item["interferer"] + item["noise"], rtol=0, atol=0)
            peak = max(float(item[k].abs().max()) for k in ("mixture", "target", "interferer", "noise"))
            assert peak == pytest.approx(0.9, abs=1e-6)
            info = item["info"]
            assert -3.0 <= info["level_db"] <= 3.0
            assert _db(item["interferer"]) - _db(item["target"]) == pytest.approx(info["level_db"], abs=1e-3)
            if info["start_noise"] >= 0:
                n_noisy += 1
                speech = item["target"] + item["interferer"]
                assert _db(speech) - _db(item["noise"]) == pytest.approx(info["snr_noise"], abs=1e-3)
            else:
                assert np.isnan(info["snr_noise"]) and not item["noise"].any()
    assert 0 < n_noisy < len(dm.train_set) + len(dm.val_set)
    batch = next(iter(dm.train_dataloader()))
    assert batch["mixture"].shape == (2, 16_000) and batch["target"].shape == (2, 16_000)


def test_draws_reproducible_per_seed_epoch_index_whatever_the_workers(folders):
    dm = _dm(folders)
    ds = dm.train_set
    first = [ds[i]["mixture"] for i in range(len(ds))]
    loader = DataLoader(ds, batch_size=None, num_workers=2, collate_fn=lambda x: x)
    for x, y in zip(first, (item["mixture"] for item in loader)):
        torch.testing.assert_close(x, y, rtol=0, atol=0)
    dm.set_epoch(1)
    assert any(not torch.equal(x, ds[i]["mixture"]) for i, x in enumerate(first))
    dm.set_epoch(0)
    assert all(torch.equal(x, ds[i]["mixture"]) for i, x in enumerate(first))
    val = [dm.val_set[i]["mixture"] for i in range(len(dm.val_set))]
    dm.set_epoch(7)
    assert all(torch.equal(x, dm.val_set[i]["mixture"]) for i, x in enumerate(val)) and dm.val_set.epoch == 0
    other = _dm(folders, seed=4).train_set
    assert not torch.equal(other[0]["mixture"], first[0])
    assert {r.path.name for r, _, _ in ds.a.pieces}.isdisjoint({r.path.name for r, _, _ in dm.val_set.a.pieces})


def test_silent_windows_are_never_drawn(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for i in range(3):  # 1.5 s of silence, then 1.5 s of loud noise
            x = np.concatenate([np.zeros(24_000), 0.3 * rng.standard_normal(24_000)]).astype(np.float32)
            sf.write(tmp_path / name / f"take{i}.wav", x, 16_000, subtype="FLOAT")
    opts = dict(segment_seconds=1.0, items_per_epoch=40, val_items=5, min_speech_seconds=2.0)
    dm = KnownSpeakersDataModule(tmp_path / "a", tmp_path / "b", **opts)
    dm.setup()
    n_windows = (len(dm.train_set.a) - dm.segment) // FRAME + 1
    assert 0 < len(dm.train_set.starts_a) < n_windows  # some windows were rejected
    for ds in (dm.train_set, dm.val_set):
        for i in range(len(ds)):
            item = ds[i]
            for key in ("target", "interferer"):
                frames = item[key].reshape(-1, FRAME).pow(2).mean(-1)  # [50]
                assert float((frames > 1e-4).float().mean()) >= 0.5  # at least half of the window is sound
    with pytest.raises(MediaError, match=r"only 4\.5 s of speech"):
        KnownSpeakersDataModule(tmp_path / "a", tmp_path / "b", segment_seconds=1.0, min_speech_seconds=6.0).setup()


# --------------------------------------------------------------------------- folders and decoding


def test_any_rate_channels_and_format_is_read_as_16k_mono(folders, tiny_corpus):
    recs = read_folder(folders["a"], "data.speaker_a")
    assert [r.path.suffix for r in recs] == [".wav", ".flac"]  # sorted, hidden file skipped
    src, _ = sf.read(sorted((tiny_corpus / "dev" / "targets").glob("spk005_*.wav"))[1], dtype="float32")
    flac = recs[1].audio
    assert flac.dtype == np.float32 and flac.ndim == 1 and abs(len(flac) - len(src)) <= 1
    np.testing.assert_allclose(flac[: len(src)], 0.75 * src[: len(flac)], atol=2e-3)  # mean of y and y / 2, resampled twice


def test_bad_folders_are_one_line_errors(folders, tmp_path):
    a, b = folders["a"], folders["b"]
    with pytest.raises(MediaError, match=r"no such folder \(data\.speaker_b\)"):
        KnownSpeakersDataModule(a, tmp_path / "missing")
    (tmp_path / "file.wav").write_bytes(b"x")
    with pytest.raises(MediaError, match="not a folder"):
        KnownSpeakersDataModule(tmp_path / "file.wav", b)
    (tmp_path / "empty").mkdir()
    with pytest.raises(MediaError, match="holds no files"):
        KnownSpeakersDataModule(tmp_path / "empty", b)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("not audio\n")
    (tmp_path / "notes" / "broken.wav").write_bytes(b"RIFF\0\0\0\0WAVE")
    dm = KnownSpeakersDataModule(tmp_path / "notes", b)
    with pytest.raises(MediaError, match=r"no decodable audio in its 2 file\(s\)") as err:
        dm.setup()
    assert len(str(err.value).splitlines()) == 1
    with pytest.raises(ConfigError, match="same folder"):
        KnownSpeakersDataModule(a, a / ".." / a.name)
    (tmp_path / "x" / "spk006").mkdir(parents=True)
    shutil.copy(next(b.iterdir()), tmp_path / "x" / "spk006")
    with pytest.raises(ConfigError, match="name_a and data.name_b"):
        KnownSpeakersDataModule(tmp_path / "x" / "spk006", b)
    assert KnownSpeakersDataModule(tmp_path / "x" / "spk006", b, name_a="Alice").speakers == ["Alice", "spk006"]
    with pytest.raises(ConfigError, match="level_db"):
        KnownSpeakersDataModule(a, b, level_db=(5, -5))
    with pytest.raises(ConfigError, match="min_active"):
        KnownSpeakersDataModule(a, b, min_active=0.0)


def test_audio_past_the_memory_budget_is_decoded_once_to_the_cache(folders, tmp_path, monkeypatch):
    in_memory = read_folder(folders["b"], "data.speaker_b")
    with pytest.raises(ConfigError, match="cache_dir"):
        read_folder(folders["b"], "data.speaker_b", MemoryBudget(0))
    cached = read_folder(folders["b"], "data.speaker_b", MemoryBudget(0), cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("*.f32"))) == 2
    for mem, disk in zip(in_memory, cached):
        assert isinstance(disk.audio, RawAudio) and len(disk) == len(mem)
        np.testing.assert_array_equal(disk.audio[0 : len(mem)], mem.audio)
        clone = pickle.loads(pickle.dumps(disk.audio))  # as a DataLoader worker gets it: a path, mapped again
        np.testing.assert_array_equal(clone[100:200], mem.audio[100:200])

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(kn, "load_audio", no_decoding)
    again = read_folder(folders["b"], "data.speaker_b", MemoryBudget(0), cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(again[1].audio[0 : len(again[1])], in_memory[1].audio)


# --------------------------------------------------------------------------- fit and the recipe


def _known_config(folders, **over):
    data = dict(
        speaker_a=str(folders["a"]), speaker_b=str(folders["b"]), segment_seconds=0.5, batch_size=2, items_per_epoch=4, val_items=2
    )
    cfg = dict(model="tasnet", model_config=SMALL_TASNET, task="known", data=data, max_steps=2, log_every_n_steps=1)
    cfg.update(over)
    return cfg


def test_fit_on_two_folders_names_the_outputs_in_the_checkpoint(folders, tmp_path):
    out = tmp_path / "run"
    path = fit(_known_config(folders), out)
    model, info = load_checkpoint(path)
    assert info["extra"]["speakers"] == ["spk005", "spk006"] and info["extra"]["task"] == "known"
    assert info["extra"]["global_step"] == 2
    assert {"val/loss", "val/si_sdri", "val/si_sdri_0", "val/si_sdri_1"} <= set(info["extra"]["metrics"])
    assert torch.load(out / "last.ckpt", map_location="cpu", weights_only=False)["avse"]["speakers"] == ["spk005", "spk006"]
    with torch.no_grad():
        assert model(torch.randn(1, 8000)).shape == (1, 2, 8000)
    assert not (out / "audio_cache").exists()  # everything fitted in memory


def test_fit_refuses_bad_known_configs(folders, tmp_path):
    with pytest.raises(ConfigError, match="audio-visual"):
        fit(_known_config(folders, model="avnet", model_config={}, task="extract", data_module="speakers"), tmp_path / "av")
    cfg = _known_config(folders)
    del cfg["data"]["speaker_b"]
    with pytest.raises(ConfigError, match="speaker_b"):
        fit(cfg, tmp_path / "one")
    with pytest.raises(ConfigError, match="unknown data option.*root"):
        fit(_known_config(folders, data={**_known_config(folders)["data"], "root": "corpus"}), tmp_path / "both")
    with pytest.raises(ConfigError, match="cannot be a file name"):  # names become output files
        fit(_known_config(folders, data={**_known_config(folders)["data"], "name_a": "../evil"}), tmp_path / "name")


def test_two_speakers_recipe_is_a_valid_known_config(folders):
    from avse.config import override
    from avse.training.module import TrainConfig
    from avse.training.recipe import load_recipe

    cfg = override(TrainConfig(), load_recipe(CONFIGS / "two_speakers.yaml"))
    assert cfg.task == "known" and cfg.model == "tasnet" and cfg.model_config["n_sources"] == 2
    module = SeparationModule(cfg.model, cfg.model_config, task=cfg.task)
    assert sum(p.numel() for p in module.parameters()) < 1_000_000  # small enough for a CPU
    dm = KnownSpeakersDataModule(**{**cfg.data, "speaker_a": folders["a"], "speaker_b": folders["b"]})
    assert dm.speakers == ["spk005", "spk006"] and dm.segment == 48_000


@pytest.mark.slow
def test_train_two_speakers_from_the_command_line_outputs_in_order(folders, tmp_path):
    from avse.cli import main

    out = tmp_path / "run"
    sets = [
        f"data.speaker_a={folders['a']}", f"data.speaker_b={folders['b']}", "data.name_a=Alice", "data.name_b=Bob",
        "data.segment_seconds=1.0", "data.batch_size=4", "data.num_workers=0", "data.items_per_epoch=40",
        "data.val_items=4", "max_epochs=6", "lr=3e-3",
        "model_config.n_filters=64", "model_config.bottleneck=32", "model_config.hidden=64", "model_config.skip=32",
        "model_config.n_blocks=5", "model_config.n_repeats=1",
    ]  # fmt: skip
    args = ["train", str(CONFIGS / "two_speakers.yaml"), "--out", str(out)]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 0
    model, info = load_checkpoint(out / "last.avse.pt")
    assert info["extra"]["speakers"] == ["Alice", "Bob"]
    dm = KnownSpeakersDataModule(folders["a"], folders["b"], segment_seconds=1.0, val_items=4, level_db=(0.0, 0.0))
    dm.setup("validate")
    batch = next(iter(DataLoader(dm.val_set, batch_size=4)))
    with torch.no_grad():
        est = model(batch["mixture"])  # [4, 2, T]
    sdr = lambda e, r: -neg_si_sdr(e, r)  # noqa: E731  [4]
    a, b = batch["target"], batch["interferer"]
    # an untrained model scores about -20 dB against both; 60 steps give output 0 Alice, output 1 Bob
    assert torch.all(sdr(est[:, 0], a) > 0.0) and torch.all(sdr(est[:, 0], a) > sdr(est[:, 0], b) + 10.0)
    assert torch.all(sdr(est[:, 1], b) > 0.0) and torch.all(sdr(est[:, 1], b) > sdr(est[:, 1], a) + 10.0)
