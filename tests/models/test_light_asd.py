"""Tests for avse.models.light_asd: shapes, chunked embedding, the crop geometry, strict loading of the released weights, the whole detector and its MFCCs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from avse.errors import ConfigError
from avse.models.light_asd import (
    CROP,
    FACE_BOX_REF,
    LightASD,
    LightASDVisualEncoder,
    crop_matrices,
    crops,
    crops_from_faces,
    load_detector,
    load_visual_encoder,
    mfcc,
    reference_crop,
    visual_state_dict,
)
from avse.video.roi import STABLE_POINTS, transform_points

WEIGHTS = Path(__file__).resolve().parents[3] / "shared" / "models" / "light_asd"


def light_asd_checkpoint(path: Path) -> Path:
    """A checkpoint in the released layout (the ASD wrapper's state dict) holding a seeded random visual encoder."""
    from avse.models.light_asd import PREFIX

    torch.manual_seed(0)
    enc = LightASDVisualEncoder()
    torch.save({f"{PREFIX}{k}": v for k, v in enc.state_dict().items()} | {"model.other.weight": torch.zeros(1)}, path)
    return path


def _random_encoder() -> LightASDVisualEncoder:
    torch.manual_seed(0)
    enc = LightASDVisualEncoder()
    for m in enc.modules():  # non-trivial batch-norm statistics
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return enc.eval()


def test_shapes_and_parameter_count():
    enc = _random_encoder()
    y = enc(torch.randint(0, 256, (2, 9, CROP, CROP), dtype=torch.uint8))
    assert y.shape == (2, 9, 128) and y.dtype == torch.float32
    assert torch.all(y >= 0)  # a max over ReLU outputs
    assert sum(p.numel() for p in enc.parameters()) == 545024  # the released checkpoints' visual part
    with pytest.raises(ConfigError):
        enc(torch.zeros(9, CROP, CROP))


def test_chunked_embedding_equals_one_pass():
    enc = _random_encoder()
    x = np.random.default_rng(0).integers(0, 256, (37, CROP, CROP), dtype=np.uint8)
    with torch.no_grad():
        full = enc(torch.from_numpy(x)[None])[0].numpy()
    np.testing.assert_allclose(enc.embed(x, chunk=10), full, atol=1e-4)


def test_temporal_context_is_six_frames():
    enc = _random_encoder()
    x = torch.randint(0, 256, (1, 20, CROP, CROP)).float()
    x2 = x.clone()
    x2[0, 19] = 255 - x2[0, 19]
    with torch.no_grad():
        a, b = enc(x)[0], enc(x2)[0]
    assert torch.allclose(a[: 19 - enc.context], b[: 19 - enc.context], atol=1e-6)
    assert (a[19 - enc.context] - b[19 - enc.context]).abs().max() > 1e-4


def test_crop_geometry():
    ref = reference_crop()
    cx, cy, s = FACE_BOX_REF
    # the crop spans x - 0.7 s .. x + 0.7 s, y - 0.3 s .. y + 1.1 s of the reference frame
    scale = CROP / (1.4 * s)
    np.testing.assert_allclose(ref, (STABLE_POINTS - [cx - 0.7 * s, cy - 0.3 * s]) * scale)
    # a face at twice the reference size, shifted: its stable points land on the crop's reference points
    n = 5
    pts = STABLE_POINTS * 2 + [30.0, 40.0]
    lm = {"eyes": np.repeat(pts[None, :4], n, 0), "nose": np.repeat(pts[None, 4], n, 0),
          "lips": np.repeat(np.full((1, 40, 2), 300.0), n, 0)}
    m = crop_matrices(lm)
    np.testing.assert_allclose(transform_points(m, pts[None].repeat(n, 0)), ref[None].repeat(n, 0), atol=1e-9)
    frames = [np.full((600, 600, 3), 200, np.uint8)] * n
    out = crops(frames, lm)
    assert out.shape == (n, CROP, CROP) and out.dtype == np.uint8
    assert np.all(out == 200)
    # outside the frame: Light-ASD's padding gray
    far = {k: v - 1000.0 for k, v in lm.items()}
    assert np.all(crops(frames, far) == 110)


@pytest.mark.parametrize("name", ["pretrain_AVA_CVPR.model", "finetuning_TalkSet.model"])
def test_released_weights_load_strictly(name):
    path = WEIGHTS / name
    if not path.is_file():
        pytest.skip(f"no Light-ASD checkpoint at {path}")
    state = visual_state_dict(path)
    assert set(state) == set(LightASDVisualEncoder().state_dict())
    enc = load_visual_encoder(path)  # load_state_dict(strict=True)
    assert not any(p.requires_grad for p in enc.parameters()) and not enc.training
    y = enc.embed(np.full((8, CROP, CROP), 128, np.uint8))
    assert y.shape == (8, 128) and np.isfinite(y).all()


def test_not_a_light_asd_checkpoint(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"encoder.weight": torch.zeros(2)}, path)
    with pytest.raises(ConfigError):
        visual_state_dict(path)
    path.write_text("not a checkpoint")
    with pytest.raises(ConfigError, match="not a readable Light-ASD checkpoint"):
        visual_state_dict(path)


def test_frames_without_a_face_embed_as_zero_rows(tmp_path):
    """Missing landmarks (NaN) give the visual stream's "no face" rows; the other frames are embedded from crops placed
    by the gap-filled landmarks, as the whole clip would be."""
    from avse.models.light_asd import embed_frames

    enc = _random_encoder()
    rng = np.random.default_rng(0)
    n = 12
    frames = [rng.integers(0, 255, (160, 200, 3), dtype=np.uint8) for _ in range(n)]
    eyes = np.array([[70.0, 60], [90, 60], [110, 60], [130, 60]])
    lm = {"lips": np.tile(rng.uniform(80, 120, (40, 2)), (n, 1, 1)), "eyes": np.tile(eyes, (n, 1, 1)),
          "nose": np.tile([100.0, 80], (n, 1)), "face_box": np.tile([60.0, 30, 140, 130], (n, 1))}
    whole = embed_frames(frames, lm, enc)
    assert whole.shape == (n, 128) and np.all(whole.any(1))
    gappy = {k: v.copy() for k, v in lm.items()}
    for k in gappy:
        gappy[k][4:6] = np.nan
    out = embed_frames(frames, gappy, enc)
    assert not out[4:6].any()
    keep = np.r_[0:4, 6:n]  # the head does not move, so the filled landmarks place the same crops everywhere
    assert np.allclose(out[keep], whole[keep], atol=1e-5)
    none = {k: np.full_like(v, np.nan) for k, v in lm.items()}
    assert not embed_frames(frames, none, enc).any()


def test_mfcc_matches_the_release_feature_code():
    """Light-ASD's MFCCs against python_speech_features 0.6 (the release's feature code), values it printed for this
    signal: 1,000 samples of two sines, as int16 samples."""
    t = np.arange(1000) / 16000
    x = np.round((0.3 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 1330 * t)) * 32768) / 32768
    f = mfcc(x)
    assert f.shape == (5, 13) and f.dtype == np.float32  # 1 + ceil((1000 - 400) / 160) frames
    first = [19.6869, 16.3923, -12.684, -6.5547, 23.8194, 25.1274, -15.3095, -47.991, -33.2464, -2.347, -2.7553,
             -28.8681, -35.7955]
    last = [19.5894, 21.3917, -11.7447, -6.0709, 26.6854, 30.3138, -9.035, -41.909, -28.1664, 1.623, 0.9199,
            -24.7913, -31.6048]
    np.testing.assert_allclose(f[0], first, atol=2e-3)
    np.testing.assert_allclose(f[-1], last, atol=2e-3)
    assert mfcc(np.zeros(100)).shape == (1, 13)  # shorter than a frame: one zero-padded frame
    with pytest.raises(ConfigError):
        mfcc(x, sr=8000)


def _random_detector() -> LightASD:
    torch.manual_seed(0)
    det = LightASD()
    for m in det.modules():
        if isinstance(m, torch.nn.BatchNorm3d | torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return det.eval()


def test_detector_shapes_and_pieces():
    det = _random_detector()
    with torch.no_grad():
        y = det(torch.randint(0, 256, (2, 10, CROP, CROP), dtype=torch.uint8), torch.randn(2, 40, 13))
    assert y.shape == (2, 10)
    with pytest.raises(ConfigError):
        det(torch.zeros(1, 10, CROP, CROP), torch.zeros(1, 36, 13))
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (80, CROP, CROP), dtype=np.uint8)
    audio = rng.standard_normal(48000).astype(np.float32) * 0.1  # 3 s: 299 MFCC frames -> 74 video frames
    s = det.scores(faces, audio)
    assert s.shape == (74,) and np.isfinite(s).all()
    with torch.no_grad():  # one piece of 3 s is the whole clip: a single pass
        whole = det(torch.from_numpy(faces[None, :74]), torch.from_numpy(mfcc(audio)[None, :296]))[0].numpy()
    np.testing.assert_allclose(det.scores(faces, audio, durations=(3,)), whole, rtol=1e-5, atol=1e-5)
    assert not np.allclose(det.scores(faces, audio, durations=(1,)), whole, rtol=1e-5, atol=1e-5)  # 1 s pieces
    with pytest.raises(ConfigError):
        det.scores(faces, audio[:300])


def test_face_crops_map_onto_the_detector_crop():
    """The nose tip and the mouth centre of an aligned face crop land where the detector's crop places them (the
    eyes lie above that crop)."""
    from avse.video.roi import FACE_BOX, REFERENCE_MOUTH_CENTRE, face_reference

    left, top, side = FACE_BOX
    mouth = (REFERENCE_MOUTH_CENTRE - np.array([left, top])) * (96 / side)
    src = np.stack([face_reference(96)[4], mouth])  # in the 96-pixel face crop
    cx, cy, s = FACE_BOX_REF
    dst = np.stack([reference_crop()[4], (REFERENCE_MOUTH_CENTRE - [cx - 0.7 * s, cy - 0.3 * s]) * (CROP / (1.4 * s))])
    faces = np.zeros((2, 96, 96, 3), dtype=np.uint8)
    for x, y in src.round().astype(int):
        faces[:, y - 1 : y + 2, x - 1 : x + 2] = 255
    out = crops_from_faces(faces)
    assert out.shape == (2, CROP, CROP) and out.dtype == np.uint8
    for x, y in dst.round().astype(int):
        assert out[0, y - 1 : y + 2, x - 1 : x + 2].max() > 100
    assert out[0].mean() < 10  # nothing else lit
    with pytest.raises(ConfigError):
        crops_from_faces(np.zeros((2, 96, 80, 3), dtype=np.uint8))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["pretrain_AVA_CVPR.model", "finetuning_TalkSet.model"])
def test_released_detector_loads_and_tells_a_talking_face_from_a_still_one(name):
    """On a real clip, the released detector scores the talking face well above its first frame repeated, and above the
    same face with the sound muted."""
    path = WEIGHTS / name
    clip = WEIGHTS.parents[1] / "data" / "real" / "grid"
    if not path.is_file() or not any(clip.glob("*.mpg")):
        pytest.skip("no Light-ASD weights or real clips here (../shared)")
    from avse.video.frontend import process
    from avse.video.io import iter_grid_frames

    det = load_detector(path)
    assert sum(p.numel() for p in det.parameters()) == 1_021_378  # the released checkpoints' whole model (1.0 M)
    video = sorted(clip.glob("*.mpg"))[0]
    front = process(video)
    frames = list(iter_grid_frames(video, max_frames=len(front.landmarks["lips"])))
    cr = crops(frames, front.landmarks)
    audio = front.audio
    talking = det.scores(cr, audio)
    still = det.scores(np.repeat(cr[:1], len(cr), axis=0), audio)
    silent = det.scores(cr, np.zeros_like(audio))
    assert talking.mean() > still.mean() + 1.5 and talking.mean() > silent.mean()
