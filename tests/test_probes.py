"""Probes: agreement with scikit-learn, metrics against sklearn's, protocol hygiene, validation errors.

Train, val and test sets are drawn from one distribution (``_classes``): the same class centres for every split,
so accuracies far above chance can be asserted next to the agreement with sklearn.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, roc_auc_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler

from encoderzoo.embeddings import EmbeddingSet
from encoderzoo.probe_job import knn_probe
from encoderzoo.probes import (
    DEFAULT_C_GRID,
    KNNProbe,
    LinearProbe,
    PrototypeProbe,
    binary_auroc,
    curate,
    evaluate,
    evaluate_curation,
    few_shot,
    near_duplicates,
)
from encoderzoo.probes._base import as_features
from encoderzoo.probes.curation import farthest_point_sample
from encoderzoo.probes.fewshot import sample_shots


def _classes(k=4, d=32, noise=1.5, seed=0):
    """``draw(n)`` -> (X, y) from k Gaussian classes whose centres are fixed once: every split shares them."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) * 2

    def draw(n):
        y = rng.integers(0, k, n)
        return (centers[y] + rng.normal(size=(n, d)) * noise).astype(np.float32), y

    return draw


# ---------------------------------------------------------------- kNN


def test_medmnist_plus_knn_equals_sklearn_far_above_chance():
    draw = _classes(noise=5.0)
    (X, y), (Xt, yt) = draw(600), draw(300)
    ours = KNNProbe.medmnist_plus(device="cpu").fit(X, y).predict(Xt)
    theirs = KNeighborsClassifier(n_neighbors=11).fit(X, y).predict(Xt)
    assert np.array_equal(ours, theirs)
    assert 0.6 < (ours == yt).mean() < 0.99  # chance is 0.25; not trivially separable either


def test_medmnist_plus_knn_breaks_exact_distance_ties_by_training_order():
    """0/1 features make squared distances small integers, so many training rows are exactly equidistant from a
    query and which of them fill the last of the 11 places decides the vote. We keep the smaller training index
    (a stable sort of exact distances); sklearn's heap keeps an implementation-defined one, so sklearn is the
    oracle only where the 11th and 12th distances differ."""
    rng = np.random.default_rng(3)
    X = rng.integers(0, 2, size=(400, 24)).astype(np.float32)
    y = rng.integers(0, 3, 400)
    Xt = rng.integers(0, 2, size=(300, 24)).astype(np.float32)
    ours = KNNProbe.medmnist_plus(device="cpu").fit(X, y).predict(Xt)

    distance = ((Xt[:, None].astype(np.float64) - X[None]) ** 2).sum(-1)
    nearest = np.argsort(distance, axis=1, kind="stable")[:, :11]
    oracle = np.array([np.bincount(y[row], minlength=3).argmax() for row in nearest])  # vote ties: smaller class
    eleventh, twelfth = np.take_along_axis(distance, np.argsort(distance, 1, kind="stable")[:, 10:12], 1).T
    tied = eleventh == twelfth
    assert tied.mean() > 0.5  # the tie straddles the boundary for most queries
    assert np.array_equal(ours, oracle)
    theirs = KNeighborsClassifier(n_neighbors=11).fit(X, y).predict(Xt)
    assert np.array_equal(ours[~tied], theirs[~tied])
    reversed_ties = np.argsort(distance[:, ::-1], axis=1, kind="stable")[:, :11]  # ties to the larger index
    other_rule = np.array([np.bincount(y[::-1][row], minlength=3).argmax() for row in reversed_ties])
    assert (other_rule != oracle).mean() > 0.05  # the tie rule decides many votes: a wrong rule would be seen


def test_medmnist_plus_knn_orders_near_ties_float32_cannot_resolve():
    """Unit-length training rows and queries within 1e-7 of the origin: every squared distance is 1 + O(1e-8),
    and the differences that decide the order are below float32's resolution there. sklearn (float64) orders
    them; the exact re-ranking must too."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 64))
    X = (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)
    y = rng.integers(0, 3, 500)
    Xt = (rng.normal(size=(200, 64)) * 1e-8).astype(np.float32)
    ours = KNNProbe.medmnist_plus(device="cpu").fit(X, y).predict(Xt)
    theirs = KNeighborsClassifier(n_neighbors=11).fit(X, y).predict(Xt)
    assert np.array_equal(ours, theirs)
    in_float32 = ((Xt[:, None] - X[None]) ** 2).sum(-1)  # float32 throughout
    float32_votes = np.array([np.bincount(y[row], minlength=3).argmax() for row in np.argsort(in_float32, 1)[:, :11]])
    assert (float32_votes != theirs).sum() >= 5  # float32 alone gets some of these votes wrong


def test_medmnist_plus_knn_outlier_does_not_send_every_query_to_exact_reranking(monkeypatch):
    """One training row 300x farther out must not widen the near-tie tolerance of every query (it bounded the
    rounding by the largest training norm): the rows that can be near a query bound it instead, and results
    hold."""
    draw = _classes(d=64, noise=5.0)
    (X, y), (Xt, _) = draw(2000), draw(400)
    original = KNNProbe._rerank_exactly
    reranked = {"plain": [], "outlier": []}
    for case in reranked:
        if case == "outlier":
            X[0] *= 300

        def spy(self, query, score, rows, *rest, case=case):
            reranked[case].append(len(rows))
            return original(self, query, score, rows, *rest)

        monkeypatch.setattr(KNNProbe, "_rerank_exactly", spy)
        ours = KNNProbe.medmnist_plus(device="cpu").fit(X, y).predict(Xt)
        assert np.array_equal(ours, KNeighborsClassifier(n_neighbors=11).fit(X, y).predict(Xt))
    plain, outlier = sum(reranked["plain"]), sum(reranked["outlier"])
    assert 0 < plain <= outlier < 0.25 * len(Xt)  # the old bound re-ranked all 400 with the outlier


def test_knn_probe_is_independent_of_the_callers_arrays():
    """The model keeps its own copy: changing X after fit changes nothing; strided views are accepted."""
    rng = np.random.default_rng(3)
    X, y, Xt = rng.integers(0, 2, (400, 24)).astype(np.float32), rng.integers(0, 3, 400), rng.integers(0, 2, (300, 24))
    Xt = Xt.astype(np.float32)  # 0/1 features: ties everywhere, so most queries take the exact re-ranking path
    probe = KNNProbe.medmnist_plus(device="cpu").fit(X, y)
    before = probe.predict(Xt)
    X[:] = rng.integers(0, 2, X.shape)
    assert np.array_equal(probe.predict(Xt), before)
    (X, y), (Xt, _) = _classes(noise=5.0)(300), _classes(noise=5.0)(100)  # no ties: training order is moot
    reversed_rows = KNNProbe.medmnist_plus(device="cpu").fit(X[::-1], y[::-1]).predict(Xt[::-1])
    assert np.array_equal(reversed_rows[::-1], KNNProbe.medmnist_plus(device="cpu").fit(X, y).predict(Xt))


def test_knn_many_k_in_one_pass_equals_separate_fits():
    draw = _classes()
    (X, y), (Xt, _) = draw(600), draw(100)
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


def test_cosine_knn_normalizes_training_and_query_vectors():
    """Rows with norms from 0.05 to 20: a dot-product search would pick the longest rows, cosine must not."""
    rng = np.random.default_rng(3)
    X = (rng.normal(size=(300, 8)) * rng.uniform(0.05, 20, (300, 1))).astype(np.float32)
    y = rng.integers(0, 3, 300)
    Q = (rng.normal(size=(40, 8)) * rng.uniform(0.05, 20, (40, 1))).astype(np.float32)
    k, T = 7, 0.07
    unit = lambda A: A / np.linalg.norm(A, axis=1, keepdims=True)  # noqa: E731
    sims = unit(Q).astype(np.float64) @ unit(X).T.astype(np.float64)
    expected = np.zeros((40, 3))
    for i in range(40):  # a plain loop: top-k by cosine, weights exp((s - s_max) / T)
        top = np.argsort(-sims[i], kind="stable")[:k]
        w = np.exp((sims[i, top] - sims[i, top].max()) / T)
        np.add.at(expected[i], y[top], w)
        expected[i] /= expected[i].sum()
    proba = KNNProbe(k=k, temperature=T, device="cpu").fit(X, y).predict_proba(Q)
    assert np.allclose(proba, expected, atol=1e-4)


def _embedding_set(X, y, name):
    ids = [f"{name}{i}" for i in range(len(y))]
    return EmbeddingSet(torch.from_numpy(np.asarray(X, np.float32)), np.asarray(y), ids)


def test_knn_probe_chooses_k_on_val():
    """30% of training labels flipped: large k averages the noise out, so k is not the first of the grid."""
    draw = _classes(k=2, d=8, noise=2.0, seed=4)
    rng = np.random.default_rng(5)
    (X, y), (Xv, yv), (Xt, yt) = draw(600), draw(300), draw(300)
    y = np.where(rng.random(len(y)) < 0.3, 1 - y, y)
    result = knn_probe(
        _embedding_set(X, y, "tr"), _embedding_set(Xv, yv, "va"), _embedding_set(Xt, yt, "te"), None, "cpu"
    )
    reference = {k: (KNNProbe(k=k, device="cpu").fit(X, y).predict(Xv) == yv).mean() for k in (10, 20, 50, 100, 200)}
    best = max(reference, key=lambda k: (reference[k], -k))
    assert best != 10 and result["k"] == best and result["selection_metric"] == "accuracy"
    assert result["val_scores"] == pytest.approx(reference)
    test_acc = (KNNProbe(k=best, device="cpu").fit(X, y).predict(Xt) == yt).mean()
    assert result["accuracy"]["values"] == pytest.approx([test_acc])


# ---------------------------------------------------------------- linear


def test_linear_probe_matches_sklearn_logistic_regression():
    draw = _classes(noise=3.0)
    (X, y), (Xt, yt) = draw(600), draw(400)
    scaler = StandardScaler().fit(X)
    for C in (0.01, 1.0):
        ours = LinearProbe(C=C, standardize=True, device="cpu").fit(X, y).score(Xt, yt)
        sk = LogisticRegression(C=C, max_iter=5000).fit(scaler.transform(X), y).score(scaler.transform(Xt), yt)
        assert abs(ours - sk) <= 0.005, (C, ours, sk)
        assert ours > 0.8  # chance is 0.25


def test_binary_linear_probe_matches_sklearn_coefficients():
    X, y = _classes(k=2, noise=3.0)(600)
    ours = LinearProbe(C=0.1, standardize=False, dtype="float64", tol=1e-7, device="cpu").fit(X, y)
    sk = LogisticRegression(C=0.1, max_iter=5000, tol=1e-8).fit(X.astype(np.float64), y)
    assert np.allclose(ours.coef_.cpu().numpy(), sk.coef_, atol=1e-5)


@pytest.mark.parametrize("standardize", [False, True])
def test_default_c_grid_path_matches_sklearn_per_c(standardize):
    """Every C of the default grid (warm-started path): coefficients and validation accuracy equal sklearn's."""
    draw = _classes(k=3, d=10, noise=4.0, seed=1)
    (X, y), (Xv, yv) = draw(240), draw(200)
    probe = LinearProbe(standardize=standardize, dtype="float64", tol=1e-7, max_iter=3000, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # every fit of the path must converge
        probe.fit(X, y, Xv, yv)
    scaler = StandardScaler().fit(X.astype(np.float64)) if standardize else None
    prep = (lambda A: scaler.transform(A.astype(np.float64))) if standardize else (lambda A: A.astype(np.float64))
    assert [r["C"] for r in probe.path_] == pytest.approx(DEFAULT_C_GRID)
    for record, coef, intercept in zip(probe.path_, probe.coef_path_, probe.intercept_path_, strict=True):
        sk = LogisticRegression(C=record["C"], tol=1e-10, max_iter=20000).fit(prep(X), y)
        scale = max(1.0, np.abs(sk.coef_).max())
        assert record["converged"] and record["max_abs_gradient"] <= 1e-7
        assert np.abs(coef - sk.coef_).max() <= 1e-4 * scale, (record["C"], np.abs(coef - sk.coef_).max(), scale)
        centred = intercept - intercept.mean()  # softmax intercepts are defined up to a constant
        assert np.allclose(centred, sk.intercept_ - sk.intercept_.mean(), atol=1e-4 * scale)
        assert record["score"] == sk.score(prep(Xv), yv)
    best = max(probe.path_, key=lambda r: r["score"])
    assert probe.C_ == best["C"] and 0.6 < best["score"]  # chance is 1/3


@pytest.mark.parametrize("dtype", ["auto", "float32"])
def test_default_path_converges_to_sklearns_tolerance(dtype):
    """The default (tol=1e-4 like sklearn's lbfgs; float64 on CPU) converges at every C; scores match sklearn's."""
    draw = _classes(k=3, d=10, noise=4.0, seed=1)
    (X, y), (Xv, yv) = draw(240), draw(200)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        probe = LinearProbe(standardize=False, dtype=dtype, device="cpu").fit(X, y, Xv, yv)
    for record in probe.path_:
        assert record["converged"] and record["max_abs_gradient"] <= 1e-4
        sk = LogisticRegression(C=record["C"]).fit(X.astype(np.float64), y)
        assert abs(record["score"] - sk.score(Xv.astype(np.float64), yv)) <= 2 / len(yv)


def test_unconverged_fit_warns_and_is_recorded():
    draw = _classes(k=3, d=10, noise=4.0, seed=1)
    (X, y), (Xv, yv) = draw(240), draw(100)
    with pytest.warns(ConvergenceWarning, match="stopped before the gradient reached tol"):
        probe = LinearProbe(C=[0.1, 10.0], max_iter=2, standardize=False, device="cpu").fit(X, y, Xv, yv)
    assert not probe.converged_ and not any(r["converged"] for r in probe.path_)
    assert all(r["n_iter"] <= 2 for r in probe.path_)


def test_validation_chooses_standardization():
    rng = np.random.default_rng(0)

    def tiny_signal(n):  # the label lives in a feature 1000x smaller than pure-noise features
        y = rng.integers(0, 2, n)
        X = rng.normal(size=(n, 20)) * 5.0
        X[:, 0] = (y * 2 - 1 + rng.normal(size=n) * 0.5) * 1e-3
        return X.astype(np.float32), y

    def tiny_noise(n):  # two informative features, 60 noise features of tiny scale: z-scoring inflates them
        y = rng.integers(0, 2, n)
        X = rng.normal(size=(n, 62)) * 1e-3
        X[:, :2] = (y[:, None] * 2 - 1) * 1.0 + rng.normal(size=(n, 2)) * 1.2
        return X.astype(np.float32), y

    for make, expected in ((tiny_signal, True), (tiny_noise, False)):
        (X, y), (Xv, yv) = make(40 if make is tiny_noise else 300), make(300)
        probe = LinearProbe(device="cpu").fit(X, y, Xv, yv)
        best = {s: max(r["score"] for r in probe.path_ if r["standardize"] is s) for s in (True, False)}
        assert best[expected] > best[not expected] + 0.02, (make.__name__, best)
        assert probe.standardize_ is expected
        assert probe.val_scores_[probe.C_] == best[expected]


def test_imbalanced_classes_select_on_auroc():
    rng = np.random.default_rng(2)

    def draw(n):
        y = (rng.random(n) < 0.1).astype(int)
        return (rng.normal(size=(n, 6)) + y[:, None] * 0.8).astype(np.float32), y

    (X, y), (Xv, yv) = draw(400), draw(300)
    probe = LinearProbe(C=[1e-3, 1.0], standardize=True, device="cpu").fit(X, y, Xv, yv)
    assert probe.selection_metric_ == "auroc"
    for record in probe.path_:
        refit = LinearProbe(C=record["C"], standardize=True, device="cpu").fit(X, y)
        assert record["score"] == pytest.approx(roc_auc_score(yv, refit.predict_proba(Xv)[:, 1]), abs=1e-6)
    balanced = _classes(k=2)(200)
    assert LinearProbe(C=[0.1, 1.0], device="cpu").fit(*balanced, *balanced).selection_metric_ == "accuracy"


def test_c_is_chosen_on_validation_not_test():
    draw = _classes(noise=3.0)
    (X, y), (Xv, yv) = draw(600), draw(200)
    probe = LinearProbe(C=[1e-4, 1e-2, 1.0], standardize=True, device="cpu").fit(X, y, Xv, yv)
    assert set(probe.val_scores_) == {1e-4, 1e-2, 1.0}
    assert probe.C_ == max(probe.val_scores_, key=lambda c: (probe.val_scores_[c], -c))
    with pytest.raises(ValueError, match="choose C on validation data"):
        LinearProbe(C=[0.1, 1.0], device="cpu").fit(X, y)


def test_label_never_seen_in_train_names_split_label_and_classes():
    draw = _classes(k=3)
    (X, y), (Xv, yv) = draw(90), draw(30)
    yv[0] = 7
    message = r"the val split has label\(s\) \[7\] never seen in train; train has classes \[0, 1, 2\]"
    with pytest.raises(ValueError, match=message):
        LinearProbe(C=[0.1, 1.0], device="cpu").fit(X, y, Xv, yv)
    for probe in (KNNProbe(device="cpu"), LinearProbe(C=1.0, device="cpu"), PrototypeProbe(device="cpu")):
        probe.fit(X, y)
        with pytest.raises(ValueError, match=r"the test split has label\(s\) \[5, 7\] never seen in train"):
            probe.column_targets(np.array([0, 5, 7, 1]), split="test")
    with pytest.raises(ValueError, match=r"the test split has label\(s\) \[7\]"):
        few_shot(X, y, Xv, yv, shots=(1,), seeds=1, classifiers=("prototype",), device="cpu")
    with pytest.raises(ValueError, match=r"the val split has label\(s\) \[7\]"):
        knn_probe(_embedding_set(X, y, "tr"), _embedding_set(Xv, yv, "va"), _embedding_set(X, y, "te"), None, "cpu")


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


# ---------------------------------------------------------------- metrics and interface


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
    X, y = _classes()(200)
    for probe in (KNNProbe(device="cpu"), LinearProbe(C=1.0, device="cpu"), PrototypeProbe(device="cpu")):
        fitted = clone(probe).fit(X, y)
        assert set(fitted.get_params()) == set(probe.get_params())
        assert 0.9 < fitted.score(X, y) <= 1.0
        assert list(fitted.classes_) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="not fitted"):
        KNNProbe().predict(X)
    with pytest.raises(ValueError, match="contains NaN"):
        KNNProbe(device="cpu").fit(np.full((3, 2), np.nan), [0, 1, 0])
    beyond_float32 = np.array([[1e300, 0.0], [0.0, 1.0], [1.0, 1.0]])  # finite in float64, inf once cast
    with pytest.raises(ValueError, match="infinity or a value too large"):
        KNNProbe(device="cpu").fit(beyond_float32, [0, 1, 0])
    with pytest.raises(ValueError, match="infinity or a value too large"):
        KNNProbe(device="cpu").fit(X, y).predict(np.full((1, X.shape[1]), 1e300))
    with pytest.raises(ValueError, match="beyond float32's range"):
        as_features(beyond_float32)
    with pytest.raises(ValueError, match="too large for float32 squared distances"):  # |x|^2 overflows float32
        KNNProbe.medmnist_plus(device="cpu").fit(X * 1e19, y)
    with pytest.raises(ValueError, match="X has 10 samples but y has 3"):
        LinearProbe(C=1.0).fit(X[:10], y[:3])
    with pytest.raises(ValueError, match="features"):
        KNNProbe(k=3, device="cpu").fit(X, y).predict(X[:, :5])
    with pytest.raises(ValueError, match="k must be a positive integer"):
        KNNProbe(k=0).fit(X, y)
    with pytest.raises(ValueError, match="at least 2 classes"):
        LinearProbe(C=1.0).fit(X[:5], np.zeros(5))
    with pytest.raises(ValueError, match="standardize must be"):
        LinearProbe(C=1.0, standardize="yes").fit(X, y)


# ---------------------------------------------------------------- few-shot


def test_episodes_hold_exactly_n_per_class_and_depend_on_the_seed():
    y = np.repeat(np.arange(4), [30, 12, 7, 50])
    for n in (1, 5):
        first, short = sample_shots(y, n, seed=0)
        assert short == [] and np.array_equal(np.bincount(y[first]), [n] * 4) and len(set(first)) == 4 * n
        assert not np.array_equal(first, sample_shots(y, n, seed=1)[0])
        assert np.array_equal(first, sample_shots(y, n, seed=0)[0])
    index, short = sample_shots(y, 10, seed=0)
    assert short == [2] and np.array_equal(np.bincount(y[index]), [10, 10, 7, 10])


def test_few_shot_fits_on_train_episodes_only(monkeypatch):
    """Every fitted row is a training row, n per class; val reaches the linear probe only as its X_val."""
    draw = _classes(d=8)
    (X, y), (Xv, yv), (Xt, yt) = draw(200), draw(60), draw(60)
    fits = []
    for cls in (KNNProbe, LinearProbe, PrototypeProbe):
        original = cls.fit

        def spy(self, X_fit, y_fit, *rest, _original=original):
            fits.append((type(self).__name__, np.asarray(X_fit).copy(), np.asarray(y_fit).copy(), rest))
            return _original(self, X_fit, y_fit, *rest)

        monkeypatch.setattr(cls, "fit", spy)
    few_shot(X, y, Xt, yt, shots=(2,), seeds=2, X_val=Xv, y_val=yv, device="cpu")
    unit = X / np.linalg.norm(X, axis=1, keepdims=True)
    assert sorted(name for name, *_ in fits) == ["KNNProbe"] * 2 + ["LinearProbe"] * 2 + ["PrototypeProbe"] * 2
    episodes = []
    for name, X_fit, y_fit, rest in fits:
        pool = unit if name == "LinearProbe" else X
        rows = [int(np.flatnonzero(np.all(np.isclose(pool, r, atol=1e-6), axis=1))[0]) for r in X_fit]
        assert np.array_equal(y[rows], y_fit) and np.array_equal(np.bincount(y_fit), [2, 2, 2, 2])
        episodes.append(tuple(rows))
        if name == "LinearProbe":
            assert np.allclose(rest[0], Xv / np.linalg.norm(Xv, axis=1, keepdims=True)) and rest[1] is yv
        else:
            assert rest == ()
    assert len(set(episodes)) == 2  # one episode per seed, shared by the three classifiers


def test_few_shot_is_accurate_on_separable_data():
    draw = _classes(k=4, d=32, noise=1.0)
    (X, y), (Xv, yv), (Xt, yt) = draw(400), draw(100), draw(300)
    out = few_shot(X, y, Xt, yt, shots=(1, 5), seeds=3, X_val=Xv, y_val=yv, device="cpu")
    for clf in ("knn", "linear", "prototype"):
        for n in (1, 5):
            cell = out["results"][clf][n]["accuracy"]
            assert len(cell["values"]) == 3 and np.isclose(cell["mean"], np.mean(cell["values"]))
            assert cell["mean"] > 0.9, (clf, n, cell)


def test_few_shot_linear_is_at_least_as_good_as_prototypes():
    """Few nuisance dimensions of larger variance, a common offset: z-scoring with the statistics of one shot per
    class (the old rule) fell 7 points under the prototype classifier here; the linear classifier must match it."""
    rng = np.random.default_rng(7)
    k, d = 3, 64
    centers = rng.normal(size=(k, d)) * 0.9
    scales = np.where(np.arange(d) < 4, 3.0, 1.0)

    def draw(n):
        y = rng.integers(0, k, n)
        return (centers[y] + rng.normal(size=(n, d)) * scales + 2.0).astype(np.float32), y

    (X, y), (Xv, yv), (Xt, yt) = draw(300), draw(150), draw(600)
    out = few_shot(X, y, Xt, yt, shots=(1, 3), seeds=6, X_val=Xv, y_val=yv, device="cpu")["results"]
    for n in (1, 3):
        for metric in ("balanced_accuracy", "auroc"):
            linear, proto = out["linear"][n][metric]["mean"], out["prototype"][n][metric]["mean"]
            assert linear >= proto - 0.01, (n, metric, linear, proto)
        assert out["prototype"][n]["balanced_accuracy"]["mean"] > 0.8  # chance is 1/3: the property is not vacuous


# ---------------------------------------------------------------- curation


def _sphere_clusters(sizes, d=16, spread=0.15, seed=0):
    """Clusters on the unit sphere around orthogonal directions; returns (X, cluster id)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(sizes)), sizes)
    X = np.eye(d)[labels] + rng.normal(size=(len(labels), d)) * spread
    return X.astype(np.float32), labels


def test_curation_drops_planted_outliers():
    X, c = _sphere_clusters([200, 200, 200, 200])
    rng = np.random.default_rng(1)
    outliers = []
    for cluster in range(4):  # 3 per cluster (1.5% < 2%): well inside the cluster's cone, but far from its centre
        direction = np.eye(16)[cluster] * 0.55 + rng.normal(size=(3, 16)) * 0.45
        outliers.append(direction)
    X = np.concatenate([X, np.concatenate(outliers).astype(np.float32)])
    planted = np.arange(800, 812)
    for fraction in (0.1, 0.5, 0.9):
        chosen = curate(X, fraction, n_clusters=4, device="cpu")
        assert len(chosen) == round(fraction * len(X)) and len(np.unique(chosen)) == len(chosen)
        assert not np.isin(planted, chosen).any(), fraction


def test_curation_represents_every_cluster_in_proportion():
    X, c = _sphere_clusters([400, 150, 40, 10])
    rng = np.random.default_rng(0)
    order = rng.permutation(len(X))
    X, c = X[order], c[order]
    chosen = curate(X, 0.1, n_clusters=4, device="cpu")
    counts = np.bincount(c[chosen], minlength=4)
    assert np.all(np.abs(counts - np.array([40, 15, 4, 1])) <= 1), counts


def test_dense_centre_is_thinned_by_farthest_point_sampling():
    """The dense centre (below the median distance) holds 100 near-copies of one point and 50 distinct points:
    once the support is taken, farthest-point sampling fills the budget with the distinct ones."""
    rng = np.random.default_rng(0)
    centre = np.eye(8)[0]
    copies = centre + rng.normal(size=(100, 8)) * 1e-4
    inner = centre + rng.normal(size=(100, 8)) * 0.05
    outer = centre + rng.normal(size=(100, 8)) * 0.4
    X = np.concatenate([copies, inner, outer]).astype(np.float32)
    chosen = curate(X, 0.58, n_clusters=1, device="cpu")  # the support (~144) and ~30 from the dense centre
    assert len(chosen) == 174
    assert np.isin(np.arange(100), chosen).sum() <= 2
    # the helper itself, against a plain greedy loop
    unit = torch.nn.functional.normalize(torch.from_numpy(X[150:]), dim=1)
    got = farthest_point_sample(unit, 5, unit[:1]).tolist()
    sims = unit.numpy() @ unit.numpy().T
    nearest, expected = 1 - sims[:, 0], []
    for _ in range(5):
        nearest[expected] = -1
        i = int(np.argmax(nearest))
        expected.append(i)
        nearest = np.minimum(nearest, 1 - sims[:, i])
    assert got == expected


def test_near_duplicates_found_and_threshold_respected():
    X, _ = _classes()(500)
    dup = np.concatenate([X[:5], X[:5] + 1e-4, X[5:10]])
    found = near_duplicates(dup, [f"s{i}" for i in range(15)], device="cpu")
    assert found["pairs"] == 5 and {(p["a"], p["b"]) for p in found["examples"]} == {
        (f"s{i}", f"s{i + 5}") for i in range(5)
    }
    near = np.stack([[1.0, 0.0], [0.999, np.sqrt(1 - 0.999**2)]]).astype(np.float32)  # cosine 0.999
    assert near_duplicates(near, ["a", "b"], threshold=0.9995, device="cpu")["pairs"] == 0
    assert near_duplicates(near, ["a", "b"], threshold=0.998, device="cpu")["pairs"] == 1


def _redundant_circle(rng, n_copies=200, n_spread=20):
    """Two classes on a circle (angle < 90 deg: class 0, 90-180 deg: class 1). Most training points are copies
    of one point per class, placed asymmetrically, so a probe needs the spread points to find the boundary."""

    def at(angles):
        return np.stack([np.cos(angles), np.sin(angles)], 1) + rng.normal(size=(len(angles), 2)) * 1e-3

    angles = np.concatenate(
        [
            np.full(n_copies, np.radians(10)),
            rng.uniform(0, np.pi / 2, n_spread),
            np.full(n_copies, np.radians(100)),
            rng.uniform(np.pi / 2, np.pi, n_spread),
        ]
    )
    y = (angles >= np.pi / 2).astype(int)
    test_angles = rng.uniform(0, np.pi, 400)
    return at(angles).astype(np.float32), y, at(test_angles).astype(np.float32), (test_angles >= np.pi / 2).astype(int)


def test_evaluate_curation_against_random_subsets():
    rng = np.random.default_rng(0)
    X, y, Xt, yt = _redundant_circle(rng)
    out = evaluate_curation(X, y, Xt, yt, lambda: KNNProbe(k=1, device="cpu"), fractions=(0.1,), seeds=4, device="cpu")
    budget = out["0.1"]
    assert budget["size"] == 44
    # the reported figures are the probe's on curate()'s subset and on seeded random subsets of the same size
    curated = curate(X, 0.1, device="cpu")
    reference = (KNNProbe(k=1, device="cpu").fit(X[curated], y[curated]).predict(Xt) == yt).mean()
    assert budget["curated"]["accuracy"]["values"] == pytest.approx([reference])
    randoms = []
    for seed in range(4):
        pick = np.sort(np.random.default_rng(seed).choice(len(X), size=44, replace=False))
        randoms.append((KNNProbe(k=1, device="cpu").fit(X[pick], y[pick]).predict(Xt) == yt).mean())
    assert budget["random"]["accuracy"]["values"] == pytest.approx(randoms)
    # and curation, which keeps the spread points and few copies, beats random subsets dominated by copies
    assert budget["curated"]["accuracy"]["mean"] > budget["random"]["accuracy"]["mean"] + 0.05, budget


from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

# MedMNIST stores labels as (N, 1): the probes accept that shape silently by design, where sklearn would warn.
_EXPECTED = {"check_supervised_y_2d": "(N, 1) labels are MedMNIST's format and accepted without a warning"}


@parametrize_with_checks(
    [KNNProbe(k=3, device="cpu"), LinearProbe(C=1.0, device="cpu"), PrototypeProbe(device="cpu")],
    expected_failed_checks=lambda estimator: _EXPECTED,
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
