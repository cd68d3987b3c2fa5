"""The preprocessing cache: AVSE and LRS3 inputs, shapes, resume, shards, failures, datasets reading it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from avse.data.datasets import DynamicMixDataset, SceneDataset
from avse.data.prepare import cache_path, discover, load_cached, prepare
from avse.errors import ConfigError, MediaError
from avse.plots import contact_sheet
from avse.video.io import iter_grid_frames, read_video, write_video
from avse.video.landmarks import read_landmarks
from avse.video.roi import crop_centroid_px, mouth_crops
from tests.models.test_light_asd import light_asd_checkpoint

GRID = Path(__file__).resolve().parents[3] / "shared" / "data" / "real" / "grid"


@pytest.fixture(scope="module")
def cache(tiny_corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cache") / "cache"
    report = prepare(tiny_corpus, out, jobs=2, progress=False)
    assert report["failed"] == {} and report["cached"] == report["utterances"] == 5
    return out


def test_cache_files_hold_aligned_crops_features_and_audio(tiny_corpus, cache):
    manifest = json.loads((cache / "manifest.json").read_text())
    assert manifest["layout"] == "avse" and len(manifest["items"]) == 5
    for rec in manifest["items"]:
        c = load_cached(cache / rec["file"])
        n = rec["nframes"]
        assert c["crops"].shape == (n, 96, 96) and c["crops"].dtype == np.uint8
        assert c["features"].shape == (n, 82) and np.all(np.isfinite(c["features"]))
        assert c["lips"].shape == (n, 40, 2) and c["flags"].shape == (n,)
        assert c["audio"].shape == (n * 640,) and c["audio"].dtype == np.float32
        assert rec["landmarks"] == "given" and rec["detected"] == n
        # the crops are centred on the mouth: the lip centroid lands mid-crop
        centroid = crop_centroid_px({k: c[k] for k in ("lips", "eyes", "nose")})
        assert np.all(np.abs(centroid.mean(0) - 47.5) < 3)
        # ground-truth landmarks of a synthetic face: the audio is in sync
        assert abs(rec["sync_offset_ms"]) <= 40


def test_cached_crops_are_the_front_ends_crops_of_the_video(tiny_corpus, cache):
    rec = json.loads((cache / "manifest.json").read_text())["items"][0]
    c = load_cached(cache / rec["file"])
    lm = read_landmarks(tiny_corpus / rec["split"] / "targets_landmarks" / f"{rec['id']}.npz")
    want = mouth_crops(iter_grid_frames(rec["video"], max_frames=rec["nframes"]), lm)
    np.testing.assert_array_equal(c["crops"], want)
    contact_sheet(cache / "sheet.png", c["crops"])


def test_resume_skips_and_shards_cover_everything(tiny_corpus, cache, tmp_path):
    again = prepare(tiny_corpus, cache, jobs=1, progress=False)
    assert again["made_now"] == 0 and again["cached"] == 5
    out = tmp_path / "sharded"
    a = prepare(tiny_corpus, out, shard=(0, 2), progress=False)
    b = prepare(tiny_corpus, out, shard=(1, 2), progress=False)
    assert a["in_shard"] + b["in_shard"] == 5 and b["cached"] == 5
    for rec in json.loads((out / "manifest.json").read_text())["items"]:
        x, y = load_cached(out / rec["file"]), load_cached(cache / rec["file"])
        np.testing.assert_array_equal(x["crops"], y["crops"])


def test_a_broken_video_is_reported_and_the_rest_is_cached(corpus_copy, tmp_path):
    _, items = discover(corpus_copy)
    victim = items[0]
    victim.video.write_bytes(victim.video.read_bytes()[:2000])
    report = prepare(corpus_copy, tmp_path / "cache", progress=False)
    assert list(report["failed"]) == [victim.id] and victim.video.name in report["failed"][victim.id]
    assert report["cached"] == 4 and not cache_path(tmp_path / "cache", victim.id, victim.split).exists()
    assert json.loads((tmp_path / "cache" / "failures.json").read_text()) == report["failed"]


def test_datasets_read_crops_and_features_from_the_cache(tiny_corpus, cache):
    item = SceneDataset(tiny_corpus, "dev", cache=cache, crops=True)[0]
    n = item["lips"].shape[0]
    assert item["crops"].shape == (n, 96, 96) and item["crops"].dtype == torch.uint8
    assert item["features"].shape == (n, 82)
    dyn = DynamicMixDataset(tiny_corpus, "dev", cache=cache, segment_frames=10, crops=True)[1]
    assert dyn["crops"].shape == (10, 96, 96) and dyn["features"].shape == (10, 82)
    plain = DynamicMixDataset(tiny_corpus, "dev", cache=cache, segment_frames=10)[1]
    assert "crops" not in plain and torch.equal(plain["features"], dyn["features"])  # crops only when asked
    with pytest.raises(ConfigError, match="cache"):
        SceneDataset(tiny_corpus, "dev", crops=True)


def test_not_a_corpus_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(MediaError, match="neither an AVSE corpus"):
        prepare(tmp_path / "empty", tmp_path / "out", progress=False)


@pytest.mark.slow
@pytest.mark.skipif(not GRID.is_dir(), reason="no GRID clips in ../shared/data/real/grid")
def test_lrs3_tree_with_real_faces(tmp_path):
    root = tmp_path / "lrs3"
    for k, clip in enumerate(sorted(GRID.glob("*.mpg"))[:2]):
        dst = root / "test" / f"spk{k}" / "00001.mp4"
        video = read_video(clip)  # re-encoded to mp4 with AAC, as LRS3 ships
        write_video(dst, video.frames, fps=25, audio=video.audio)
    report = prepare(root, tmp_path / "cache", progress=False)
    assert report["layout"] == "lrs3" and report["cached"] == 2 and report["failed"] == {}
    assert report["frames_detected"] >= 0.95 * report["frames"]
    for rec in json.loads((tmp_path / "cache" / "manifest.json").read_text())["items"]:
        assert rec["landmarks"] == "detected" and rec["speaker"].startswith("spk")
    shutil.rmtree(root)


def test_a_repaired_video_clears_its_failure(corpus_copy, tmp_path):
    _, items = discover(corpus_copy)
    victim = items[1]
    good = victim.video.read_bytes()
    victim.video.write_bytes(good[:1500])
    assert victim.id in prepare(corpus_copy, tmp_path / "c", progress=False)["failed"]
    victim.video.write_bytes(good)
    report = prepare(corpus_copy, tmp_path / "c", progress=False)
    assert report["failed"] == {} and report["cached"] == 5
    assert not (tmp_path / "c" / "failures.json").exists()


def test_detect_caches_the_front_ends_lips_of_a_synthetic_corpus(tiny_corpus, cache, tmp_path):
    out = tmp_path / "detected"
    report = prepare(tiny_corpus, out, jobs=1, progress=False, detect=True)
    assert report["failed"] == {} and report["cached"] == 5 and report["frames_detected"] > 0
    given = {r["id"]: r for r in json.loads((cache / "manifest.json").read_text())["items"]}
    for rec in json.loads((out / "manifest.json").read_text())["items"]:
        assert rec["landmarks"] == "detected" and given[rec["id"]]["landmarks"] == "given"
        d, g = load_cached(out / rec["file"]), load_cached(cache / rec["file"])
        assert d["features"].shape == g["features"].shape
        # the face mesh finds the drawn lips a few pixels off the renderer's points, not exactly on them
        err = np.abs(d["lips"] - g["lips"]).mean()
        assert 0.0 < err < 6.0


def test_light_asd_embeddings_are_cached_and_read_as_the_visual_stream(tiny_corpus, cache, tmp_path):
    """``prepare --light-asd`` adds the encoder's embeddings of the crops the landmarks place, made again for a cache
    that lacks them; a dataset on the "light_asd" stream reads them as its features, cut as the lips are."""
    from avse.models.light_asd import embed_video, load_visual_encoder

    weights = light_asd_checkpoint(tmp_path / "asd.model")
    with pytest.raises(MediaError, match="no such Light-ASD checkpoint"):
        prepare(tiny_corpus, tmp_path / "x", progress=False, light_asd=tmp_path / "missing.model")
    out = tmp_path / "cache"
    shutil.copytree(cache, out)
    report = prepare(tiny_corpus, out, jobs=1, progress=False, light_asd=weights)
    assert report["made_now"] == 5 and report["failed"] == {}
    assert prepare(tiny_corpus, out, jobs=1, progress=False, light_asd=weights)["made_now"] == 0
    _, utts = discover(tiny_corpus)
    enc = load_visual_encoder(weights)
    for u in utts:
        c = load_cached(cache_path(out, u.id, u.split))
        assert c["light_asd"].shape == (len(c["lips"]), 128) and c["light_asd"].dtype == np.float32
        assert np.allclose(c["light_asd"], embed_video(u.video, c, enc), atol=1e-5)
        assert c["light_asd"].std(0).mean() > 0  # the frames differ
    ds = DynamicMixDataset(tiny_corpus, "dev", cache=out, segment_frames=20, seed=0, visual_stream="light_asd")
    item = ds[0]
    full = load_cached(cache_path(out, item["info"]["target"], "dev"))["light_asd"]
    start = item["info"]["start_frame"]
    assert item["features"].shape == (20, 128)
    assert np.allclose(item["features"].numpy(), full[start : start + 20])
    with pytest.raises(ConfigError, match="cache"):
        DynamicMixDataset(tiny_corpus, "dev", visual_stream="light_asd")
    with pytest.raises(ConfigError, match="visual stream"):
        DynamicMixDataset(tiny_corpus, "dev", cache=out, visual_stream="pixels")
    with pytest.raises(MediaError):  # a cache without the embeddings
        DynamicMixDataset(tiny_corpus, "dev", cache=cache, visual_stream="light_asd")[0]
