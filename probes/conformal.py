"""Split-conformal prediction sets from predicted probabilities, calibrated on a held-out split.

For a target coverage ``1 - alpha`` and ``n`` calibration scores, the threshold ``q`` is the
``ceil((n + 1)(1 - alpha))``-th smallest calibration score (infinite when that exceeds ``n``: every set is then
the full label set); a test sample's set is every class whose score would be ``<= q``. With exchangeable
calibration and test data and continuous scores, coverage lies in ``[1 - alpha, 1 - alpha + 1 / (n + 1))`` in
expectation over calibration draws (Vovk et al. 2005; Angelopoulos & Bates 2021).

Scores (``proba`` rows sorted in decreasing order, ``c(y)`` the cumulative probability up to and including
class ``y``, ``r(y)`` its 1-based rank, ``u`` a uniform draw per sample):

- ``lac`` (least ambiguous classifier, Sadinle et al. 2019): ``1 - p(y)``.
- ``aps`` (adaptive prediction sets, Romano et al. 2020): ``c(y) - u p(y)`` (``randomized=True``, exact coverage,
  sets may be empty) or ``c(y)`` (``randomized=False``; the set then also keeps the first class whose cumulative
  probability reaches ``q``: conservative, never empty).
- ``raps`` (Angelopoulos et al. 2021): APS plus ``lam * max(0, r(y) - k_reg)``, which penalizes long tails.

Multi-label tasks are handled one label at a time (``multilabel_sets``): each label is a binary problem with
LAC scores on ``(1 - p, p)``, calibrated on that label's known values.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SCORES = ("lac", "aps", "raps")


def conformal_quantile(scores: np.ndarray, alpha: float) -> float:
    """The ``ceil((n + 1)(1 - alpha))``-th smallest of ``scores`` (``inf`` past the largest)."""
    _check_alpha(alpha)
    scores = np.sort(np.asarray(scores, dtype=np.float64).reshape(-1))
    if len(scores) == 0:
        raise ValueError("no calibration scores: the calibration split is empty")
    rank = int(np.ceil((len(scores) + 1) * (1 - alpha)))
    return float("inf") if rank > len(scores) else float(scores[rank - 1])


def _sorted(proba: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: class order by decreasing probability (stable: ties by class index), cumulative sums in that
    order mapped back to classes, and each class's 1-based rank."""
    order = np.argsort(-proba, axis=1, kind="stable")
    cumsum_sorted = np.cumsum(np.take_along_axis(proba, order, axis=1), axis=1)
    cumsum = np.empty_like(proba)
    rank = np.empty(proba.shape, dtype=np.int64)
    np.put_along_axis(cumsum, order, cumsum_sorted, axis=1)
    np.put_along_axis(rank, order, np.arange(1, proba.shape[1] + 1)[None, :].repeat(len(proba), 0), axis=1)
    return order, cumsum, rank


def class_scores(proba: np.ndarray, score: str, u: np.ndarray | None = None, lam: float = 0.0, k_reg: int = 0):
    """``(N, K)``: the score each class would have if it were the true one (``u`` ``(N,)`` for randomized
    APS/RAPS, ``None`` for the non-randomized form)."""
    proba = np.asarray(proba, dtype=np.float64)
    if score == "lac":
        return 1.0 - proba
    if score not in SCORES:
        raise ValueError(f"unknown conformal score {score!r}; choose from {SCORES}")
    _, cumsum, rank = _sorted(proba)
    out = cumsum - (u[:, None] * proba if u is not None else 0.0)
    if score == "raps":
        out = out + lam * np.maximum(0, rank - k_reg)
    return out


def calibration_scores(proba, y, score: str, u=None, lam: float = 0.0, k_reg: int = 0) -> np.ndarray:
    """The score of each calibration sample's true class."""
    y = np.asarray(y, dtype=np.int64)
    return class_scores(proba, score, u, lam, k_reg)[np.arange(len(y)), y]


def prediction_sets(proba, threshold: float, score: str, u=None, lam: float = 0.0, k_reg: int = 0) -> np.ndarray:
    """``(N, K)`` boolean sets: classes whose score is ``<= threshold``. Non-randomized APS/RAPS (``u=None``) also
    keep the first class (in decreasing probability) whose score reaches the threshold, so no set is empty."""
    proba = np.asarray(proba, dtype=np.float64)
    scores = class_scores(proba, score, u, lam, k_reg)
    sets = scores <= threshold
    if score != "lac" and u is None and np.isfinite(threshold):
        order = np.argsort(-proba, axis=1, kind="stable")
        reached = np.take_along_axis(scores, order, axis=1) >= threshold
        has = reached.any(1)
        first = np.where(has, reached.argmax(1), proba.shape[1] - 1)
        sets[np.arange(len(proba)), order[np.arange(len(proba)), first]] = True
    return sets


def set_report(sets: np.ndarray, y: np.ndarray, label_names: Sequence[str] | None = None) -> dict:
    """Coverage, mean set size, per-class coverage, shares of empty and singleton sets."""
    y = np.asarray(y, dtype=np.int64)
    covered = sets[np.arange(len(y)), y]
    sizes = sets.sum(1)
    per_class = {}
    for c in range(sets.shape[1]):
        members = y == c
        if members.any():
            name = label_names[c] if label_names and c < len(label_names) else str(c)
            per_class[name] = {"coverage": float(covered[members].mean()), "n": int(members.sum())}
    return {
        "coverage": float(covered.mean()),
        "set_size": float(sizes.mean()),
        "empty": float((sizes == 0).mean()),
        "singleton": float((sizes == 1).mean()),
        "worst_class_coverage": min(v["coverage"] for v in per_class.values()),
        "per_class": per_class,
    }


def conformal_report(
    y_cal: np.ndarray,
    proba_cal: np.ndarray,
    y_test: np.ndarray,
    proba_test: np.ndarray,
    *,
    coverage: float = 0.9,
    scores: Sequence[str] = ("lac", "aps"),
    randomized: bool = True,
    lam: float = 0.01,
    k_reg: int = 2,
    seed: int = 0,
    label_names: Sequence[str] | None = None,
) -> dict:
    """Split conformal sets calibrated on ``(y_cal, proba_cal)`` and reported on the test split.

    The first of ``scores`` is reported at the top level (``coverage``, ``coverage_gap`` = ``|coverage -
    target|``, ``set_size``, ...), each other score under its name (``report["aps"]["coverage"]``). ``seed``
    draws the uniforms of randomized APS/RAPS (calibration and test from separate streams). Multi-label tasks:
    per-label LAC (``multilabel_sets``).
    """
    alpha = 1.0 - coverage
    _check_alpha(alpha)
    unknown = [s for s in scores if s not in SCORES]
    if unknown or not scores:
        raise ValueError(f"unknown conformal score(s) {unknown or scores}; choose from {SCORES}")
    y_cal, y_test = np.asarray(y_cal), np.asarray(y_test)
    if y_test.ndim == 2:
        report = multilabel_sets(y_cal, proba_cal, y_test, proba_test, alpha, label_names)
        return {"target": coverage, "score": "lac (per label)", **report}
    by_score = {}
    for name, randomize, threshold, sets in _score_sets(
        y_cal, proba_cal, proba_test, alpha, scores, randomized, lam, k_reg, seed
    ):
        report = set_report(sets, y_test, label_names)
        by_score[name] = {
            "threshold": threshold if np.isfinite(threshold) else None,  # None: every class (too few cal. samples)
            "randomized": randomize,
            **({"lam": lam, "k_reg": k_reg} if name == "raps" else {}),
            "coverage_gap": abs(report["coverage"] - coverage),
            **report,
        }
    head = {"target": coverage, "score": scores[0], "n_cal": int(len(y_cal)), **by_score[scores[0]]}
    return head | {name: report for name, report in by_score.items() if name != scores[0]}


def _score_sets(y_cal, proba_cal, proba_test, alpha, scores, randomized, lam, k_reg, seed):
    """``(score, randomized, threshold, sets)`` for each single-label score, in order: the uniforms of randomized
    scores come from two streams of ``seed`` (calibration, test), drawn score after score."""
    proba_cal, proba_test = np.asarray(proba_cal, np.float64), np.asarray(proba_test, np.float64)
    cal_stream, test_stream = np.random.default_rng(seed).spawn(2)
    for name in scores:
        randomize = randomized and name != "lac"
        u_cal = cal_stream.uniform(size=len(y_cal)) if randomize else None
        u_test = test_stream.uniform(size=len(proba_test)) if randomize else None
        threshold = conformal_quantile(calibration_scores(proba_cal, y_cal, name, u_cal, lam, k_reg), alpha)
        yield name, randomize, threshold, prediction_sets(proba_test, threshold, name, u_test, lam, k_reg)


def _label_sets(y_cal, proba_cal, y_test, proba_test, alpha):
    """``(label index, test rows, threshold, sets)`` for each label known in both splits (binary LAC)."""
    two = lambda p: np.stack([1 - p, p], 1)  # noqa: E731
    for j in range(y_test.shape[1]):
        cal, test = ~np.isnan(y_cal[:, j]), ~np.isnan(y_test[:, j])
        if not cal.any() or not test.any():
            continue
        threshold = conformal_quantile(
            calibration_scores(two(proba_cal[cal, j]), y_cal[cal, j].astype(np.int64), "lac"), alpha
        )
        yield j, test, threshold, prediction_sets(two(proba_test[test, j]), threshold, "lac")


def covered_and_sizes(
    y_cal: np.ndarray,
    proba_cal: np.ndarray,
    y_test: np.ndarray,
    proba_test: np.ndarray,
    *,
    coverage: float = 0.9,
    score: str = "lac",
    randomized: bool = True,
    lam: float = 0.01,
    k_reg: int = 2,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Per test row: whether its set holds the truth (1/0) and the set's size, for the sets ``conformal_report``
    reports at its top level when ``score`` is its first score (same threshold, same uniforms). Multi-label:
    ``(N, L)`` arrays, NaN where the label is unknown or was not calibrated."""
    alpha = 1.0 - coverage
    y_cal, y_test = np.asarray(y_cal), np.asarray(y_test)
    if y_test.ndim == 2:
        covered, sizes = np.full(y_test.shape, np.nan), np.full(y_test.shape, np.nan)
        for j, rows, _, sets in _label_sets(y_cal, proba_cal, y_test, proba_test, alpha):
            covered[rows, j] = sets[np.arange(len(sets)), y_test[rows, j].astype(np.int64)]
            sizes[rows, j] = sets.sum(1)
        return covered, sizes
    (_, _, _, sets), *_ = _score_sets(y_cal, proba_cal, proba_test, alpha, (score,), randomized, lam, k_reg, seed)
    y = y_test.astype(np.int64)
    return sets[np.arange(len(y)), y].astype(np.float64), sets.sum(1).astype(np.float64)


def multilabel_sets(y_cal, proba_cal, y_test, proba_test, alpha: float, label_names=None) -> dict:
    """Per-label binary LAC sets (subsets of {absent, present}); the top level averages over labels."""
    per_label = {}
    for j, test, threshold, sets in _label_sets(y_cal, proba_cal, y_test, proba_test, alpha):
        cal = ~np.isnan(y_cal[:, j])
        report = set_report(sets, y_test[test, j].astype(np.int64), ["absent", "present"])
        name = label_names[j] if label_names and j < len(label_names) else str(j)
        per_label[name] = {
            "threshold": threshold if np.isfinite(threshold) else None,
            "n_cal": int(cal.sum()),
            **report,
        }
    if not per_label:
        raise ValueError("no label has known values in both the calibration and the test split")
    mean = {k: float(np.mean([r[k] for r in per_label.values()])) for k in ("coverage", "set_size", "empty")}
    return {
        **mean,
        "coverage_gap": abs(mean["coverage"] - (1 - alpha)),
        "singleton": float(np.mean([r["singleton"] for r in per_label.values()])),
        "worst_class_coverage": min(r["coverage"] for r in per_label.values()),
        "per_label": per_label,
    }


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"coverage must be strictly between 0 and 1, got {1 - alpha!r}")
