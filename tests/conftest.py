"""Shared fixtures: a tiny synthetic corpus made once per test session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
SPEECH_WEIGHT = Path(__file__).resolve().parents[2] / "shared" / "avse" / "speech_weight.mat"


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """A corpus of the "tiny" preset with rendered dev scenes (read-only for tests: copy before changing)."""
    from avse.config import synth_config
    from avse.data.render import render_scenes
    from avse.data.scenes import build_scenes, write_scenes
    from avse.data.synth import synthesize_corpus

    root = tmp_path_factory.mktemp("tiny") / "corpus"
    synthesize_corpus(root, synth_config("tiny"), jobs=2, progress=False)
    write_scenes(root, "dev", build_scenes(root, "dev", n_scenes=4, seed=0))
    render_scenes(root, "dev", jobs=1, progress=False)
    return root


@pytest.fixture()
def corpus_copy(tiny_corpus, tmp_path) -> Path:
    """A private copy of the tiny corpus that a test may change."""
    dst = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, dst)
    return dst
