"""The main job end to end: `avse demo` with the shipped models (slow), and its report figure (fast)."""

import json

import numpy as np
import pytest

from avse.api import PRETRAINED_DIR
from avse.errors import ConfigError
from avse.plots import enhancement_report

SHIPPED = all((PRETRAINED_DIR / f).is_file() for f in ("av.avse.pt", "audio.avse.pt"))


def test_enhancement_report_draws_every_row(tmp_path):
    x = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    path = enhancement_report(tmp_path / "r.png", {"in": x, "out": x * 0.5}, crops=np.zeros((25, 96, 96), np.uint8),
                              opening=np.linspace(0, 0.3, 25), title="t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ConfigError):
        enhancement_report(tmp_path / "none.png", {})
    assert not (tmp_path / "none.png").exists()


@pytest.mark.slow
@pytest.mark.skipif(not SHIPPED, reason="the shipped models are not in src/avse/pretrained")
def test_demo_enhances_noisy_videos_and_reports(tmp_path):
    from avse.cli import main

    out = tmp_path / "demo"
    main(["demo", "--out", str(out), "--jobs", "2"])
    summary = json.loads((out / "summary.json").read_text())
    scenes = summary["scenes"]
    assert len(scenes) == 4 and {s["interferer"] for s in scenes} == {"speech", "noise"}
    for s in scenes:
        name = s["scene"]
        assert s["mode"] == "audio-visual"  # the front end found the synthetic face
        for suffix in (".wav", ".mp4"):
            assert (out / f"enhanced_{name}{suffix}").stat().st_size > 1000
        assert (out / f"report_{name}.png").read_bytes()[:4] == b"\x89PNG"
    # the shipped model helps on average: a positive SI-SDR improvement over the noisy input
    assert summary["mean"]["av"]["si_sdri"] > 1.0
    assert summary["mean"]["input"]["si_sdri"] == 0.0
