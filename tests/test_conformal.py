"""Split-conformal sets: MAPIE on the same probabilities, finite-sample coverage over seeds, hand-made cases."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.stats import beta as beta_distribution

from encoderzoo.probes.conformal import (
    calibration_scores,
    conformal_quantile,
    conformal_report,
    prediction_sets,
    set_report,
)

K = 5


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Exchangeable samples: model probabilities softmax(z), labels from a different (sharper) law, so the
    scores are continuous and the model is miscalibrated."""
    z = rng.normal(size=(n, K)) * 1.5
    y = (rng.uniform(size=(n, 1)) > np.cumsum(_softmax(2.0 * z), 1)).sum(1)
    return _softmax(z), y


def _mapie_sets(proba_cal, y_cal, proba_test, score: str, include_last_label, seed: int):
    mapie = pytest.importorskip("mapie.classification", reason="MAPIE is the reference (pip install 'encoderzoo[dev]')")
    from sklearn.base import BaseEstimator, ClassifierMixin

    class GivenProbabilities(ClassifierMixin, BaseEstimator):
        """X is the probability matrix itself: MAPIE then sees exactly our probabilities."""

        def fit(self, X, y):
            self.classes_ = np.unique(y)
            return self

        def predict_proba(self, X):
            return np.asarray(X)

        def predict(self, X):
            return np.asarray(X).argmax(1)

    estimator = GivenProbabilities().fit(proba_cal, y_cal)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = mapie.SplitConformalClassifier(
            estimator=estimator, confidence_level=0.9, conformity_score=score, prefit=True, random_state=seed
        ).conformalize(proba_cal, y_cal)
        params = {"include_last_label": include_last_label} if score == "aps" else {}
        _, sets = model.predict_set(proba_test, conformity_score_params=params)
    return sets[:, :, 0]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return (*_draw(rng, 700), *_draw(rng, 600))


def test_lac_equals_mapie(data):
    proba_cal, y_cal, proba_test, _ = data
    threshold = conformal_quantile(calibration_scores(proba_cal, y_cal, "lac"), 0.1)
    ours = prediction_sets(proba_test, threshold, "lac")
    reference = _mapie_sets(proba_cal, y_cal, proba_test, "lac", None, seed=0)
    assert np.array_equal(ours, reference) and 1.5 < ours.sum(1).mean() < 4.5  # not a trivial all/none case


def test_randomized_aps_equals_mapie_given_its_uniforms(data):
    proba_cal, y_cal, proba_test, _ = data
    # MAPIE draws the calibration and the test uniforms from a fresh RandomState(seed) each time
    u_cal = np.random.RandomState(7).uniform(size=len(y_cal))
    u_test = np.random.RandomState(7).uniform(size=len(proba_test))
    threshold = conformal_quantile(calibration_scores(proba_cal, y_cal, "aps", u_cal), 0.1)
    ours = prediction_sets(proba_test, threshold, "aps", u_test)
    assert np.array_equal(ours, _mapie_sets(proba_cal, y_cal, proba_test, "aps", "randomized", seed=7))


def test_non_randomized_aps_keeps_the_label_over_the_threshold_like_mapie(data):
    proba_cal, y_cal, proba_test, _ = data
    # same threshold as MAPIE (its calibration scores are randomized), our deterministic set rule
    u_cal = np.random.RandomState(3).uniform(size=len(y_cal))
    threshold = conformal_quantile(calibration_scores(proba_cal, y_cal, "aps", u_cal), 0.1)
    ours = prediction_sets(proba_test, threshold, "aps", None)
    assert np.array_equal(ours, _mapie_sets(proba_cal, y_cal, proba_test, "aps", True, seed=3))
    assert ours.sum(1).min() >= 1


def test_quantile_is_the_conformal_order_statistic():
    scores = np.array([0.3, 0.1, 0.5, 0.2])  # sorted: .1 .2 .3 .5
    assert conformal_quantile(scores, 0.4) == 0.3  # ceil(5 * 0.6) = 3rd smallest
    assert conformal_quantile(scores, 0.1) == float("inf")  # ceil(5 * 0.9) = 5 > 4: every class
    sets = prediction_sets(np.array([[0.6, 0.4]]), float("inf"), "lac")
    assert sets.all()


def test_raps_with_no_penalty_is_aps_and_the_penalty_counts_ranks():
    proba = np.array([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]])
    u = np.array([0.25, 0.5])
    y = np.array([2, 0])
    aps = calibration_scores(proba, y, "aps", u)
    assert np.allclose(aps, [1.0 - 0.25 * 0.2, 1.0 - 0.5 * 0.1], atol=1e-15)
    assert np.array_equal(calibration_scores(proba, y, "raps", u, lam=0.0, k_reg=1), aps)
    # true labels rank 3 in both rows: penalty lam * (3 - k_reg)
    assert np.allclose(calibration_scores(proba, y, "raps", u, lam=0.1, k_reg=1), aps + 0.2, atol=1e-15)


def test_set_report_by_hand():
    sets = np.array([[True, False, False], [True, True, False], [False, False, False], [False, False, True]])
    y = np.array([0, 1, 1, 0])
    report = set_report(sets, y, ["a", "b", "c"])
    assert report["coverage"] == 0.5 and report["set_size"] == 1.0
    assert report["empty"] == 0.25 and report["singleton"] == 0.5
    assert report["per_class"] == {"a": {"coverage": 0.5, "n": 2}, "b": {"coverage": 0.5, "n": 2}}
    assert report["worst_class_coverage"] == 0.5


def _coverage_bounds(n_cal: int, n_test: int, alpha: float, seeds: int) -> tuple[float, float]:
    """[1 - alpha, 1 - alpha + 1/(n+1)] widened by 4 standard errors of a mean over ``seeds`` runs.

    Given the calibration draw, coverage is Beta(k, n + 1 - k) with k = ceil((n + 1)(1 - alpha)); one run's
    test coverage adds binomial noise of variance at most 1 / (4 n_test). Four standard errors: a correct
    implementation fails with probability ~6e-5.
    """
    k = int(np.ceil((n_cal + 1) * (1 - alpha)))
    variance = beta_distribution(k, n_cal + 1 - k).var() + 1 / (4 * n_test)
    slack = 4 * np.sqrt(variance / seeds)
    return 1 - alpha - slack, 1 - alpha + 1 / (n_cal + 1) + slack


@pytest.mark.parametrize("score", ["lac", "aps", "raps"])
def test_mean_coverage_over_seeds_lies_in_the_finite_sample_bounds(score):
    n_cal, n_test, alpha, seeds = 200, 500, 0.1, 2000
    low, high = _coverage_bounds(n_cal, n_test, alpha, seeds)
    coverage = []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        proba, y = _draw(rng, n_cal + n_test)
        report = conformal_report(
            y[:n_cal], proba[:n_cal], y[n_cal:], proba[n_cal:], coverage=1 - alpha, scores=(score,), seed=seed
        )
        coverage.append(report["coverage"])
    # the width of the interval (1 / 201 ~ 0.005) is what an off-by-one quantile (ceil(n(1 - alpha))) misses by
    assert high - low < 0.011
    assert low <= np.mean(coverage) <= high, (np.mean(coverage), low, high)


def test_multilabel_sets_are_per_label():
    rng = np.random.default_rng(1)
    p = rng.uniform(0.02, 0.98, size=(1500, 3))
    y = (rng.uniform(size=(1500, 3)) < p).astype(np.float32)
    y[rng.uniform(size=y.shape) < 0.1] = np.nan
    report = conformal_report(y[:700], p[:700], y[700:], p[700:], coverage=0.9, label_names=["a", "b", "c"])
    assert report["score"] == "lac (per label)" and set(report["per_label"]) == {"a", "b", "c"}
    for j, name in enumerate("abc"):
        cal, test = ~np.isnan(y[:700, j]), ~np.isnan(y[700:, j])
        two = np.stack([1 - p[:700][cal, j], p[:700][cal, j]], 1)
        threshold = conformal_quantile(1 - two[np.arange(cal.sum()), y[:700][cal, j].astype(int)], 0.1)
        pt, yt = p[700:][test, j], y[700:][test, j].astype(int)
        covered = (1 - np.where(yt == 1, pt, 1 - pt)) <= threshold
        assert report["per_label"][name]["coverage"] == covered.mean()
    assert report["coverage"] == np.mean([report["per_label"][c]["coverage"] for c in "abc"])


def test_bad_options_are_refused(data):
    proba_cal, y_cal, proba_test, y_test = data
    with pytest.raises(ValueError, match="coverage must be strictly between 0 and 1"):
        conformal_report(y_cal, proba_cal, y_test, proba_test, coverage=1.0)
    with pytest.raises(ValueError, match="unknown conformal score"):
        conformal_report(y_cal, proba_cal, y_test, proba_test, scores=("magic",))
