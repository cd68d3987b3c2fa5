"""Score one enhancement method over the rendered scenes of a split: per-item CSV, summary JSON, plots.

``evaluate(root, "dev", "oracle-irm", out_dir)`` (or a trained model: a checkpoint path or a shipped
model's name, e.g. ``"av"``) reads ROOT/dev/scenes/SXXXXX_{mixed,target,interferer}.wav,
runs the method on each mixture, scores the estimate against the target and writes, atomically:

- ``items.csv``: one row per scene (scene, interferer_type, interferer_class, input_snr, one column per metric);
  a metric that cannot be computed for an item (e.g. PESQ on a clip without speech) is left empty.
- ``summary.json``: per metric the mean, a 95% Student-t confidence interval of the mean
  (mean +- t_{0.975, n-1} * sd / sqrt(n)) and n, over all items and split by interferer type
  and by interferer class.
- ``hist.png``: one histogram per metric; ``improvement_vs_snr.png``: SI-SDRi against the
  scene's input SNR, one point per item, with means in 5 dB bins (written only when
  "si_sdri" is among the metrics).

The same inputs give the same files (items in scene order, no randomness); with ``jobs`` > 1 the
metric values may differ from a ``jobs=1`` run in the last bits (BLAS threading in worker processes).
"""

from __future__ import annotations

import csv
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from avse import SAMPLE_RATE
from avse.audio.io import load_audio
from avse.data.metadata import Scene, load_noise_list, load_scenes, masker_noise_list_path, scenes_dir, scenes_path
from avse.errors import ConfigError, MetadataError
from avse.evaluation.baselines import BASELINES, get_baseline
from avse.evaluation.metrics import KNOWN_METRICS, evaluate_pair
from avse.plots import plot_histograms, plot_improvement_vs_snr
from avse.utils.fs import atomic_path, ensure_dir, write_json

EVAL_METRICS = ("si_sdr", "si_sdri", "pesq_wb", "stoi", "estoi")
ITEM_FIELDS = ("scene", "interferer_type", "interferer_class", "input_snr")
ORACLE_METHODS = ("oracle-irm", "oracle-ibm")
CI_LEVEL = 0.95
SNR_BIN_DB = 5.0
#: per-item columns added when DNSMOS models are given: the estimate's P.835 / P.808 scores and the input's OVRL
DNSMOS_COLUMNS = ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808", "dnsmos_ovrl_input")


# --------------------------------------------------------------------------- one item


def _scene_wavs(root: Path, dataset: str, scene: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rendered mixed, target, interferer [T] float32 of one scene."""
    folder = scenes_dir(root, dataset)
    out = []
    for part in ("mixed", "target", "interferer"):
        x, _ = load_audio(folder / f"{scene}_{part}.wav", SAMPLE_RATE)
        out.append(x)
    return out[0], out[1], out[2]


def scene_lip_features(root: str | Path, dataset: str, scene: Mapping[str, Any], n_samples: int) -> np.ndarray:
    """The target's lip features on the scene's timeline: float32 [ceil(n_samples / 640), 82].

    Computed from the target's landmark file (ROOT/{dataset}/targets_landmarks/NAME.npz) as
    the training data are: edge frames repeated over ``pre_samples`` and past the end,
    missing landmarks (NaN) set to 0. MetadataError when the landmark file is missing, ConfigError
    when ``pre_samples`` is not a whole number of video frames.
    """
    from avse.data.datasets import align_visual, frames_for, scene_pre_frames, target_lip_features
    from avse.data.metadata import target_landmarks_path

    name = scene["target"]["name"]
    path = target_landmarks_path(Path(root), dataset, name)
    if not path.is_file():
        raise MetadataError(path, "no landmarks for this target (an audio-visual model needs them; run avse prepare)")
    pre = scene_pre_frames(scene)
    return align_visual(target_lip_features(root, dataset, name), frames_for(n_samples), pre)  # [F, 82]


class ModelMethod:
    """A trained model as an evaluation method: ``(mixture [T], target, interferer, sr, features=None) -> [T]``.

    ``name_or_path`` is an avse checkpoint or a shipped model's name (avse.api.load_model).
    Audio-visual models get the target's lip features [F, 82] (``audio_visual`` is True);
    no audio-only fallback is used, so a score is always the named model's. The model's own output is scored
    (no attenuation limit and one run, unlike ``avse enhance``'s default) unless ``atten_lim_db`` or ``shifts``
    says otherwise.
    """

    def __init__(self, name_or_path: str | Path, atten_lim_db: float | None = None, shifts: int = 1):
        from avse.api import Enhancer

        self.enhancer = Enhancer.from_pretrained(name_or_path, fallback=None, atten_lim_db=atten_lim_db, shifts=shifts)
        self.audio_visual = self.enhancer.audio_visual
        self.__name__ = Path(str(name_or_path)).name.removesuffix(".pt").removesuffix(".avse")

    def __call__(self, mixture: np.ndarray, target: Any = None, interferer: Any = None, sr: int = SAMPLE_RATE,
                 features: np.ndarray | None = None) -> np.ndarray:
        """mixture [T] float -> estimate [T] float32 (features [F, 82] for audio-visual models)."""
        if self.audio_visual and features is None:
            raise ConfigError(f"{self.__name__} is audio-visual: it needs the target's lip features")
        return self.enhancer.enhance(mixture, sr, video=features if self.audio_visual else None)


@functools.lru_cache(maxsize=2)
def _dnsmos(model_dir: str) -> Any:
    """One DNSMOS session per process and model folder."""
    from avse.evaluation.dnsmos import Dnsmos

    return Dnsmos(model_dir)


def _score_item(
    args: tuple[Path, str, Scene, str | Callable[..., np.ndarray], tuple[str, ...], bool, str, str | None],
) -> dict[str, Any]:
    """Run the method on one scene and score it -> one CSV row (metric values are floats or NaN)."""
    root, dataset, scene, method, metrics, oracle, noise_class, dnsmos_dir = args
    fn: Callable[..., np.ndarray] = get_baseline(method) if isinstance(method, str) else method
    mixed, target, interferer = _scene_wavs(root, dataset, scene["scene"])
    if oracle:
        estimate = fn(mixed, target, interferer, SAMPLE_RATE)
    elif getattr(fn, "audio_visual", False):  # an audio-visual model also sees the target's lips
        estimate = fn(mixed, None, None, SAMPLE_RATE, features=scene_lip_features(root, dataset, scene, len(mixed)))
    else:  # a real method sees the mixture only
        estimate = fn(mixed, None, None, SAMPLE_RATE)
    estimate = np.asarray(estimate, dtype=np.float32)
    if estimate.shape != mixed.shape:
        raise ConfigError(f"{scene['scene']}: method returned shape {estimate.shape}, expected {mixed.shape}")
    row: dict[str, Any] = {
        "scene": scene["scene"],
        "interferer_type": scene["interferer"]["type"],
        "interferer_class": noise_class,
        "input_snr": float(scene["SNR"]),
    }
    for name in metrics:  # one at a time, so that one undefined metric does not lose the others
        try:
            row[name] = evaluate_pair(estimate, target, mixed, SAMPLE_RATE, metrics=(name,))[name]
        except ConfigError:
            row[name] = math.nan
    if dnsmos_dir is not None:
        mos = _dnsmos(dnsmos_dir).score(estimate)
        row.update(dnsmos_sig=mos.sig, dnsmos_bak=mos.bak, dnsmos_ovrl=mos.ovrl, dnsmos_p808=mos.p808)
        row["dnsmos_ovrl_input"] = _dnsmos(dnsmos_dir).score(mixed).ovrl
    return row


# --------------------------------------------------------------------------- statistics


def mean_ci(values: Sequence[float], level: float = CI_LEVEL) -> dict[str, Any]:
    """Mean and Student-t confidence interval of the finite ``values`` [n] -> {mean, ci_low, ci_high, n}.

    Non-finite values (NaN, inf) are left out. With n < 2 the interval is None; with n = 0 the mean too.
    """
    from scipy.stats import t as student_t

    x = np.asarray([v for v in values if math.isfinite(v)], dtype=np.float64)
    n = int(x.size)
    if n == 0:
        return {"mean": None, "ci_low": None, "ci_high": None, "n": 0}
    mean = float(x.mean())
    if n < 2:
        return {"mean": mean, "ci_low": None, "ci_high": None, "n": 1}
    half = float(student_t.ppf(0.5 + level / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half, "n": n}


def summarize(rows: list[dict[str, Any]], metrics: Sequence[str]) -> dict[str, Any]:
    """Per-metric statistics (see :func:`mean_ci`) over ``rows``, over all and per interferer type / class."""

    def block(sub: list[dict[str, Any]]) -> dict[str, Any]:
        return {m: mean_ci([r[m] for r in sub]) for m in metrics}

    out: dict[str, Any] = {"all": block(rows)}
    for key in ("interferer_type", "interferer_class"):
        groups = sorted({r[key] for r in rows})
        out[f"by_{key}"] = {g: block([r for r in rows if r[key] == g]) for g in groups}
    return out


# --------------------------------------------------------------------------- files


def _write_csv(path: Path, rows: list[dict[str, Any]], metrics: Sequence[str]) -> None:
    """items.csv: ITEM_FIELDS then one column per metric; NaN written as an empty cell."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([*ITEM_FIELDS, *metrics])
        for r in rows:
            cells = [r["scene"], r["interferer_type"], r["interferer_class"], repr(r["input_snr"])]
            cells += ["" if not math.isfinite(r[m]) else repr(float(r[m])) for m in metrics]
            writer.writerow(cells)


def read_items(path: str | Path) -> list[dict[str, Any]]:
    """Read an items.csv back: metric cells as floats (NaN for empty), input_snr as float."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        for k, v in r.items():
            if k not in ("scene", "interferer_type", "interferer_class"):
                r[k] = float(v) if v != "" else math.nan
    return rows


# --------------------------------------------------------------------------- entry point


def _noise_classes(root: Path) -> dict[str, str]:
    """Noise ID -> class from ROOT/metadata/masker_noise_list.json ({} when the list is missing)."""
    path = masker_noise_list_path(root)
    if not path.exists():
        return {}
    return {str(e["ID"]): str(e.get("class", "noise")) for e in load_noise_list(path)}


def evaluate(
    root: str | Path,
    dataset: str,
    method: str | Callable[..., np.ndarray],
    out_dir: str | Path,
    metrics: Sequence[str] = EVAL_METRICS,
    jobs: int = 1,
    progress: bool = True,
    dnsmos: str | Path | None = None,
) -> dict[str, Any]:
    """Score ``method`` on every rendered scene of ``dataset`` under ``root``; write items.csv, summary.json, PNGs.

    ``method``: a name in :data:`avse.evaluation.baselines.BASELINES`, a trained model (an
    avse checkpoint path or a shipped model's name, see :class:`ModelMethod`), or a callable
    ``(mixture [T], target, interferer, sr) -> estimate [T]``; a callable (and every
    non-oracle baseline) gets ``target = interferer = None``, only the oracle baselines see
    the clean signals; a callable with ``audio_visual = True`` also gets ``features=`` the
    target's lip features [F, 82] (:func:`scene_lip_features`). ``jobs`` > 1 scores items in worker processes (named baselines only;
    a callable always runs in this process). ``dnsmos``: a folder with the DNSMOS ONNX models
    (avse.evaluation.dnsmos); each item then also gets ``DNSMOS_COLUMNS`` (no reference needed).
    Returns the summary written to summary.json.
    Raises ConfigError for an unknown method or metric, MetadataError for a bad scene list.
    """
    root, out_dir = Path(root), Path(out_dir)
    if isinstance(method, (str, Path)) and str(method) not in BASELINES:
        try:
            method = ModelMethod(method)
        except ConfigError as err:
            if not str(err).startswith("unknown model"):
                raise
            raise ConfigError(f"unknown method {str(method)!r}: expected a baseline ({', '.join(BASELINES)}), "
                              "a shipped model or a checkpoint path") from None
    if isinstance(method, str):
        get_baseline(method)
        method_name, oracle = method, method in ORACLE_METHODS
    elif callable(method):
        method_name, oracle = getattr(method, "__name__", type(method).__name__), False
    else:
        raise ConfigError(f"method must be a baseline name or a callable, got {type(method).__name__}")
    metrics = tuple(metrics)
    unknown = [m for m in metrics if m not in KNOWN_METRICS]
    if unknown or not metrics:
        raise ConfigError(f"unknown metrics {unknown}; known: {KNOWN_METRICS}")
    if jobs < 1:
        raise ConfigError(f"jobs must be >= 1, got {jobs}")
    dnsmos_dir = None
    if dnsmos is not None:
        dnsmos_dir = str(Path(dnsmos).resolve())
        _dnsmos(dnsmos_dir)  # a missing model fails now, not in a worker
    scenes = load_scenes(scenes_path(root, dataset))
    classes = _noise_classes(root)
    ensure_dir(out_dir)

    def klass(s: Scene) -> str:
        itf = s["interferer"]
        return "speech" if itf["type"] == "speech" else classes.get(str(itf["name"]), "noise")

    tasks = [(root, dataset, s, method, metrics, oracle, klass(s), dnsmos_dir) for s in scenes]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(tasks), desc=f"evaluate {method_name}", unit="scene")
    rows: list[dict[str, Any]] = []
    if jobs > 1 and isinstance(method, str) and len(tasks) > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            for row in pool.map(_score_item, tasks):  # map keeps scene order
                rows.append(row)
                if bar is not None:
                    bar.update(1)
    else:
        for task in tasks:
            rows.append(_score_item(task))
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    if dnsmos_dir is not None:
        metrics = metrics + DNSMOS_COLUMNS

    summary: dict[str, Any] = {
        "method": method_name,
        "dataset": dataset,
        "root": str(root),
        "n_items": len(rows),
        "metrics": list(metrics),
        "ci": f"{CI_LEVEL:.0%} Student-t interval of the mean over items with a finite value",
        **summarize(rows, metrics),
    }
    _write_csv(out_dir / "items.csv", rows, metrics)
    write_json(out_dir / "summary.json", summary)
    title = f"{method_name} on {dataset} ({len(rows)} scenes)"
    plot_histograms(out_dir / "hist.png", rows, metrics, title)
    if "si_sdri" in metrics:
        plot_improvement_vs_snr(out_dir / "improvement_vs_snr.png", rows, title, bin_db=SNR_BIN_DB)
    return summary


__all__ = ["BASELINES", "EVAL_METRICS", "ModelMethod", "evaluate", "scene_lip_features", "mean_ci", "summarize", "read_items"]
