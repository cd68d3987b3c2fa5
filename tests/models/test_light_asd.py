"""Tests for avse.models.light_asd: shapes, chunked embedding, the crop geometry, strict loading of the released weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from avse.errors import ConfigError
from avse.models.light_asd import (
    CROP,
    FACE_BOX_REF,
    LightASDVisualEncoder,
    crop_matrices,
    crops,
    load_visual_encoder,
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
