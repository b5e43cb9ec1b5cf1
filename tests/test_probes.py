"""Probes: agreement with scikit-learn, metrics against sklearn's, protocol hygiene, validation errors."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, roc_auc_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler

from encoderzoo.probes import (
    KNNProbe,
    LinearProbe,
    PrototypeProbe,
    binary_auroc,
    curate,
    evaluate,
    few_shot,
    near_duplicates,
)


def _blobs(n=600, d=32, k=4, seed=0, noise=1.5):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) * 2
    y = rng.integers(0, k, n)
    return (centers[y] + rng.normal(size=(n, d)) * noise).astype(np.float32), y


def test_medmnist_plus_knn_equals_sklearn():
    X, y = _blobs()
    Xt, _ = _blobs(300, seed=1)
    ours = KNNProbe.medmnist_plus(device="cpu").fit(X, y).predict(Xt)
    theirs = KNeighborsClassifier(n_neighbors=11).fit(X, y).predict(Xt)
    assert np.array_equal(ours, theirs)


def test_knn_many_k_in_one_pass_equals_separate_fits():
    X, y = _blobs()
    Xt, _ = _blobs(100, seed=1)
    probe = KNNProbe(k=10, device="cpu").fit(X, y)
    many = probe.predict_proba_many(Xt, [10, 50])
    assert np.allclose(many[10], probe.predict_proba(Xt))
    assert np.allclose(many[50], clone(probe).set_params(k=50).fit(X, y).predict_proba(Xt))


def test_knn_temperature_vote_is_weighted():
    X = np.array([[1, 0], [0.8, 0.6], [0, 1]], dtype=np.float32)
    y = np.array([0, 1, 1])
    proba = KNNProbe(k=3, device="cpu").fit(X, y).predict_proba(np.array([[1, 0]], np.float32))[0]
    sims = np.array([1.0, 0.8, 0.0])
    w = np.exp(sims / 0.07)
    assert np.allclose(proba, [w[0] / w.sum(), (w[1] + w[2]) / w.sum()], atol=1e-5)


def test_linear_probe_matches_sklearn_logistic_regression():
    X, y = _blobs(noise=3.0)
    Xt, yt = _blobs(400, seed=1, noise=3.0)
    for C in (0.01, 1.0):
        ours = LinearProbe(C=C, device="cpu").fit(X, y).score(Xt, yt)
        scaler = StandardScaler().fit(X)
        sk = LogisticRegression(C=C, max_iter=5000).fit(scaler.transform(X), y).score(scaler.transform(Xt), yt)
        assert abs(ours - sk) <= 0.005, (C, ours, sk)


def test_binary_linear_probe_matches_sklearn_coefficients():
    X, y = _blobs(k=2, noise=3.0)
    ours = LinearProbe(C=0.1, standardize=False, device="cpu").fit(X, y)
    sk = LogisticRegression(C=0.1, max_iter=5000, tol=1e-8).fit(X, y)
    assert np.allclose(ours.coef_.cpu().numpy(), sk.coef_, atol=1e-3)


def test_c_is_chosen_on_validation_not_test():
    X, y = _blobs(noise=3.0)
    Xv, yv = _blobs(200, seed=2, noise=3.0)
    probe = LinearProbe(C=[1e-4, 1e-2, 1.0], device="cpu").fit(X, y, Xv, yv)
    assert set(probe.val_scores_) == {1e-4, 1e-2, 1.0}
    assert probe.C_ == max(probe.val_scores_, key=lambda c: (probe.val_scores_[c], -c))
    with pytest.raises(ValueError, match="choose C on validation data"):
        LinearProbe(C=[0.1, 1.0], device="cpu").fit(X, y)


def test_multilabel_probes_mask_unknown_labels():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 16)).astype(np.float32)
    Y = np.stack([(X[:, 0] > 0), (X[:, 1] > 0.5), (X[:, 2] + X[:, 3] > 0)], 1).astype(np.float32)
    Y[rng.random(Y.shape) < 0.1] = np.nan
    linear = LinearProbe(C=1.0, device="cpu").fit(X[:300], Y[:300])
    knn = KNNProbe(k=15, device="cpu").fit(X[:300], Y[:300])
    for probe in (linear, knn):
        proba = probe.predict_proba(X[300:])
        assert proba.shape == (100, 3) and np.isfinite(proba).all()
        assert evaluate(Y[300:], proba)["auroc"] > 0.8


def test_metrics_agree_with_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    proba = rng.dirichlet(np.ones(3), 200)
    proba[np.arange(200), y] += 0.3
    proba /= proba.sum(1, keepdims=True)
    ours = evaluate(y, proba)
    assert np.isclose(ours["auroc"], roc_auc_score(y, proba, multi_class="ovr", average="macro"))
    assert np.isclose(ours["balanced_accuracy"], balanced_accuracy_score(y, proba.argmax(1)))
    scores = rng.normal(size=50).round(1)  # ties
    labels = rng.integers(0, 2, 50)
    assert np.isclose(binary_auroc(labels, scores), roc_auc_score(labels, scores))


def test_absent_class_is_reported_not_averaged():
    y = np.array([0, 0, 1, 1])
    proba = np.array([[0.8, 0.1, 0.1], [0.6, 0.2, 0.2], [0.2, 0.7, 0.1], [0.3, 0.4, 0.3]])
    result = evaluate(y, proba, ["a", "b", "c"])
    assert result["classes_absent"] == ["c"] and result["auroc_skipped"] == ["c"]
    assert np.isclose(result["auroc"], 1.0)


def test_estimator_interface():
    X, y = _blobs(200)
    for probe in (KNNProbe(device="cpu"), LinearProbe(C=1.0, device="cpu"), PrototypeProbe(device="cpu")):
        fitted = clone(probe).fit(X, y)
        assert set(fitted.get_params()) == set(probe.get_params())
        assert 0.5 < fitted.score(X, y) <= 1.0
        assert list(fitted.classes_) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="not fitted"):
        KNNProbe().predict(X)
    with pytest.raises(ValueError, match="contains NaN"):
        KNNProbe(device="cpu").fit(np.full((3, 2), np.nan), [0, 1, 0])
    with pytest.raises(ValueError, match="X has 10 samples but y has 3"):
        LinearProbe(C=1.0).fit(X[:10], y[:3])
    with pytest.raises(ValueError, match="features"):
        KNNProbe(k=3, device="cpu").fit(X, y).predict(X[:, :5])
    with pytest.raises(ValueError, match="k must be a positive integer"):
        KNNProbe(k=0).fit(X, y)
    with pytest.raises(ValueError, match="at least 2 classes"):
        LinearProbe(C=1.0).fit(X[:5], np.zeros(5))


def test_few_shot_reports_mean_std_values_per_seed():
    X, y = _blobs(noise=2.0)
    Xt, yt = _blobs(200, seed=1, noise=2.0)
    out = few_shot(X, y, Xt, yt, shots=(1, 5), seeds=3, device="cpu")
    for clf in ("knn", "linear", "prototype"):
        cell = out["results"][clf][5]["accuracy"]
        assert len(cell["values"]) == 3 and np.isclose(cell["mean"], np.mean(cell["values"]))
    assert out["results"]["prototype"][5]["accuracy"]["mean"] > out["results"]["prototype"][1]["accuracy"]["mean"] - 0.1


def test_curation_budget_and_near_duplicates():
    X, y = _blobs(500)
    chosen = curate(X, 0.25, device="cpu")
    assert len(chosen) == 125 and len(np.unique(chosen)) == 125
    dup = np.concatenate([X[:5], X[:5] + 1e-4])
    found = near_duplicates(dup, [f"s{i}" for i in range(10)], device="cpu")
    assert found["pairs"] == 5 and {(p["a"], p["b"]) for p in found["examples"]} == {
        (f"s{i}", f"s{i + 5}") for i in range(5)
    }


from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

# MedMNIST stores labels as (N, 1): the probes accept that shape silently by design, where sklearn would warn.
_EXPECTED = {"check_supervised_y_2d": "(N, 1) labels are MedMNIST's format and accepted without a warning"}


@parametrize_with_checks(
    [KNNProbe(k=3, device="cpu"), LinearProbe(C=1.0, device="cpu"), PrototypeProbe(device="cpu")],
    expected_failed_checks=lambda estimator: _EXPECTED,
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
