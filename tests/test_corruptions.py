"""The torch MedMNIST-C corruptions against the medmnistc package's own definitions (where it imports), and the
properties the robustness probe relies on (per-row seeding, shapes, grayscale round trip)."""

from __future__ import annotations

import random
import string

import numpy as np
import pytest
import torch
from PIL import Image

from encoderzoo.corruptions import NOT_IMPLEMENTED, PRESETS, SIZE, corrupt, to_corruption_canvas


def _images(n: int = 4, seed: int = 0) -> torch.Tensor:
    """Smooth RGB images with structure (gradients, a disc, noise), 64 x 64, uint8 (N, 3, H, W)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:64, 0:64] / 63.0
    out = []
    for _ in range(n):
        base = np.stack([xx, yy, (xx + yy) / 2], -1) * rng.uniform(80, 200, size=3)
        disc = ((xx - rng.uniform(0.3, 0.7)) ** 2 + (yy - 0.5) ** 2) < 0.05
        base[disc] += rng.uniform(20, 50)
        out.append(np.clip(base + rng.normal(0, 6, size=base.shape), 0, 255).astype(np.uint8))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()


def _reference(module: str, cls: str, preset: str, name: str, severity: int, canvas: torch.Tensor) -> torch.Tensor:
    """medmnistc's own class applied to each 224 px PIL image (severity index is 0-based there)."""
    package = pytest.importorskip(f"medmnistc.corruptions.{module}", reason="medmnistc (+ opencv) not installed")
    corruptor = getattr(package, cls)(severity_params=list(PRESETS[preset][name]))
    outputs = [np.asarray(corruptor.apply(Image.fromarray(im.permute(1, 2, 0).numpy()), severity - 1)) for im in canvas]
    return torch.from_numpy(np.stack(outputs)).permute(0, 3, 1, 2)


EXACT = [  # (module, class, preset, family): our uint8 output equals the package's, value for value
    ("enhance", "Brightness", "bloodmnist", "brightness_up"),
    ("enhance", "Brightness", "bloodmnist", "brightness_down"),
    ("enhance", "Contrast", "bloodmnist", "contrast_up"),
    ("enhance", "Contrast", "bloodmnist", "contrast_down"),
    ("enhance", "GammaCorrection", "pneumoniamnist", "gamma_corr_up"),
    ("enhance", "GammaCorrection", "pneumoniamnist", "gamma_corr_down"),
    ("compression", "Pixelate", "bloodmnist", "pixelate"),
    ("compression", "JPEGCompression", "bloodmnist", "jpeg_compression"),
    ("filter", "GaussianBlur", "pneumoniamnist", "gaussian_blur"),
    # zoom blur: each bilinear zoom in float64 as scipy weights it, rounded to float32, summed in float32 in the
    # package's order; only a float64 sum within 1e-16 of a float32 rounding boundary could differ (none here)
    ("filter", "ZoomBlur", "dermamnist", "zoom_blur"),
    ("microscopy", "BlackCorner", "dermamnist", "black_corner"),
]
# float32 here, float64 there, both truncated: a value within ~1e-5 of an integer may land one level apart
WITHIN_ONE = [
    ("enhance", "Saturate", "bloodmnist", "saturate"),
    ("filter", "DefocusBlur", "bloodmnist", "defocus_blur"),
]


@pytest.mark.parametrize("severity", [1, 3, 5])
@pytest.mark.parametrize(("module", "cls", "preset", "name"), EXACT + WITHIN_ONE)
def test_deterministic_families_match_medmnistc(module, cls, preset, name, severity):
    images = _images()
    canvas, _ = to_corruption_canvas(images)
    reference = _reference(module, cls, preset, name, severity, canvas)
    ours = corrupt(images, name, severity, preset)
    assert ours.shape == reference.shape == (4, 3, SIZE, SIZE) and ours.dtype == torch.uint8
    changed = 0.1 if name == "black_corner" else 0.2  # its mildest disc (radius 123 > 112) blacks out the corners
    assert (reference != canvas).float().mean() > changed  # the corruption does change the image
    difference = (ours.int() - reference.int()).abs()
    if (module, cls, preset, name) in EXACT:
        assert difference.max() == 0
    else:
        assert difference.max() <= 1 and difference.float().mean() < 0.05


@pytest.mark.parametrize(
    ("cls", "name", "severity"),
    [
        ("GaussianNoise", "gaussian_noise", 5),
        ("SpeckleNoise", "speckle_noise", 5),
        ("ShotNoise", "shot_noise", 5),
        ("ImpulseNoise", "impulse_noise", 5),
        ("GaussianNoise", "gaussian_noise", 1),
    ],
)
def test_noise_families_match_medmnistc_in_distribution(cls, name, severity):
    """Different generators, same law: per-image mean and spread of the output agree within 5 standard errors."""
    images = _images(n=2, seed=1)
    canvas, _ = to_corruption_canvas(images)
    package = pytest.importorskip("medmnistc.corruptions.noise", reason="medmnistc (+ opencv) not installed")
    corruptor = getattr(package, cls)(severity_params=list(PRESETS["chestmnist"][name]))
    corruptor.rng = np.random.default_rng(0)  # ImpulseNoise reads it (the package's DatasetManager sets it)
    np.random.seed(0)
    reference = np.stack([corruptor.apply(Image.fromarray(im.permute(1, 2, 0).numpy()), severity - 1) for im in canvas])
    ours = corrupt(images, name, severity, "chestmnist", rows=[0, 1]).permute(0, 2, 3, 1).numpy()
    n = reference[0].size
    for r, o in zip(reference.astype(np.float64), ours.astype(np.float64), strict=True):
        spread = max(r.std(), o.std())
        assert abs(r.mean() - o.mean()) <= 5 * np.sqrt(2) * spread / np.sqrt(n)
        assert abs(r.std() - o.std()) <= 5 * np.sqrt(2) * spread / np.sqrt(2 * n)
        assert abs((r == 0).mean() - (o == 0).mean()) <= 5 * np.sqrt(2 * 0.25 / n)  # shares of black pixels


def test_noise_depends_on_the_row_not_on_the_batch():
    images = _images(n=4)
    whole = corrupt(images, "gaussian_noise", 3, "chestmnist", rows=[10, 11, 12, 13], seed=5)
    halves = torch.cat(
        [
            corrupt(images[:2], "gaussian_noise", 3, "chestmnist", rows=[10, 11], seed=5),
            corrupt(images[2:], "gaussian_noise", 3, "chestmnist", rows=[12, 13], seed=5),
        ]
    )
    assert torch.equal(whole, halves)
    other_seed = corrupt(images, "gaussian_noise", 3, "chestmnist", rows=[10, 11, 12, 13], seed=6)
    assert not torch.equal(whole, other_seed)


def test_grayscale_comes_back_as_one_channel_with_pil_luma():
    gray = _images(n=2)[:, :1]
    out = corrupt(gray, "contrast_down", 2, "pneumoniamnist")
    assert out.shape == (2, 1, SIZE, SIZE) and out.dtype == torch.uint8
    canvas, was_gray = to_corruption_canvas(gray)
    assert was_gray
    reference = Image.fromarray(canvas[0].permute(1, 2, 0).numpy())
    from PIL import ImageEnhance

    expected = np.asarray(ImageEnhance.Contrast(reference).enhance(0.8).convert("L"))
    assert np.array_equal(out[0, 0].numpy(), expected)


def test_severity_zero_is_the_canvas_only_and_bad_names_are_refused():
    images = _images(n=1)
    assert torch.equal(corrupt(images, "none", 0, "bloodmnist"), to_corruption_canvas(images)[0])
    with pytest.raises(ValueError, match="has no corruption 'gaussian_noise'"):
        corrupt(images, "gaussian_noise", 1, "bloodmnist")
    with pytest.raises(ValueError, match="unknown corruption preset"):
        corrupt(images, "pixelate", 1, "nomnist")
    with pytest.raises(ValueError, match="severity must be one of"):
        corrupt(images, "pixelate", 6, "bloodmnist")
    with pytest.raises(ValueError, match="uint8"):
        corrupt(images.float(), "pixelate", 1, "bloodmnist")


def test_every_preset_lists_what_it_leaves_out():
    registry = pytest.importorskip("medmnistc.corruptions.registry", reason="medmnistc (+ Wand, ImageMagick) needed")
    for preset, families in PRESETS.items():
        published = registry.CORRUPTIONS_DS[preset]
        assert set(families) | set(NOT_IMPLEMENTED[preset]) == set(published)
        for name, params in families.items():  # zoom blur's are numpy aranges there: compare as lists
            assert [np.asarray(p).tolist() for p in params] == [
                np.asarray(p).tolist() for p in list(published[name].severity_params)[:5]
            ]


@pytest.mark.parametrize("params", [(3, 3), (10, 5), (10, 9)])
def test_motion_blur_matches_imagemagick_through_medmnistc(params, monkeypatch):
    filters = pytest.importorskip("medmnistc.corruptions.filter", reason="medmnistc + Wand + ImageMagick needed")
    # the package calls np.fromstring, which numpy 2 removed: give it the equivalent frombuffer for this test
    monkeypatch.setattr(np, "fromstring", lambda data, dtype: np.frombuffer(data, dtype), raising=False)
    from encoderzoo.corruptions import motion_blur_at

    corruptor = filters.MotionBlur(severity_params=[params])
    canvas, _ = to_corruption_canvas(_images(n=2, seed=3))
    for i, image in enumerate(canvas):
        np.random.seed(i)  # the package draws the angle from numpy's global generator: draw it the same way
        reference = corruptor.apply(Image.fromarray(image.permute(1, 2, 0).numpy()), 0)
        np.random.seed(i)
        ours = motion_blur_at(image, *params, angle=np.random.uniform(-45, 45)).permute(1, 2, 0).numpy()
        difference = np.abs(ours.astype(int) - reference.astype(int))
        assert (reference != image.permute(1, 2, 0).numpy()).mean() > 0.3
        # ImageMagick's float arithmetic vs our float64 before truncation: sums within ~1e-6 of an integer differ
        assert difference.max() <= 1 and difference.mean() < 0.05


def test_motion_blur_angle_is_drawn_per_row():
    images = _images(n=3)
    whole = corrupt(images, "motion_blur", 4, "bloodmnist", rows=[7, 8, 9])
    single = corrupt(images[1:2], "motion_blur", 4, "bloodmnist", rows=[8])
    assert torch.equal(whole[1:2], single)
    assert not torch.equal(whole[0], corrupt(images[0:1], "motion_blur", 4, "bloodmnist", rows=[9])[0])


def _replay_bubbles(max_radius: int, max_bubbles: int, size: int) -> list[tuple[int, int, int]]:
    """The package's Bubble draws, in its order, from Python's global ``random``."""
    circles = []
    for _ in range(random.randint(7, max_bubbles)):
        r = random.randint(3, max_radius)
        circles.append((random.randint(r, size - r), random.randint(r, size - r), r))
    return circles


def _replay_stains(max_marks: int, inks: np.ndarray, size: int) -> list[tuple[np.ndarray, int, int]]:
    marks = []
    for _ in range(random.randint(1, max_marks) if max_marks > 1 else max_marks):
        ink = inks[random.randint(0, len(inks) - 1)]
        left = random.randint(10, size - ink.shape[1] - 10)
        marks.append((ink, left, random.randint(10, size - ink.shape[0] - 10)))
    return marks


def _replay_words(max_words: int, max_letters: int, max_scale: float, size: int) -> list:
    words = []
    for _ in range(random.randint(1, max_words)):
        n = random.randint(3, max_letters)
        scale = random.randint(14, int(max_scale * 100)) / 100.0
        text = "".join(random.choice(string.ascii_lowercase) for _ in range(n))
        left, baseline = random.randint(10, size - 8 * n), random.randint(10, size - 10)
        words.append((text, left, baseline, scale, tuple(random.randint(0, 255) for _ in range(3))))
    return words


OVERLAYS = [  # (class, preset, family)
    ("Bubble", "pathmnist", "bubble"),
    ("StainDeposit", "pathmnist", "stain_deposit"),
    ("Characters", "dermamnist", "characters"),
]


@pytest.mark.parametrize("severity", [1, 5])
@pytest.mark.parametrize(("cls", "preset", "name"), OVERLAYS)
def test_overlays_match_medmnistc_for_the_same_draws(cls, preset, name, severity):
    """Given the package's own random draws (replayed from Python's ``random`` with the same seed), our overlay is
    the package's output value for value: PIL's ellipse raster and DIV255 paste, the bundled inks, OpenCV's text."""
    microscopy = pytest.importorskip("medmnistc.corruptions.microscopy", reason="medmnistc (+ opencv) not installed")
    from encoderzoo.corruptions import _ink_masks, bubble_at, characters_at, stain_at

    params = PRESETS[preset][name]
    corruptor = getattr(microscopy, cls)(severity_params=list(params))
    canvas, _ = to_corruption_canvas(_images(n=3, seed=4))
    for i, image in enumerate(canvas):
        random.seed(i)
        reference = corruptor.apply(Image.fromarray(image.permute(1, 2, 0).numpy()), severity - 1)
        random.seed(i)
        if name == "bubble":
            ours = bubble_at(image, _replay_bubbles(*params[severity - 1], SIZE))
        elif name == "stain_deposit":  # the package keys its ink sets by its 0-based severity index
            ours = stain_at(image, _replay_stains(params[severity - 1], _ink_masks(str(max(3, severity - 1))), SIZE))
        else:
            ours = characters_at(image, _replay_words(*params[severity - 1], SIZE))
        assert (reference != image.permute(1, 2, 0).numpy()).any()
        assert np.array_equal(ours.permute(1, 2, 0).numpy(), reference)


@pytest.mark.parametrize(("severity", "draws"), [(1, 200), (5, 200)])
@pytest.mark.parametrize(("cls", "preset", "name"), OVERLAYS)
def test_overlays_match_medmnistc_in_distribution(cls, preset, name, severity, draws):
    """Our draws (torch, per row) against the package's (Python's ``random``): over ``draws`` corruptions of a flat
    gray image, the mean share of changed pixels and the mean changed-pixel value agree within 5 standard errors
    of their difference (independent samples: ``sqrt(var_a / n + var_b / n)``)."""
    microscopy = pytest.importorskip("medmnistc.corruptions.microscopy", reason="medmnistc (+ opencv) not installed")
    corruptor = getattr(microscopy, cls)(severity_params=list(PRESETS[preset][name]))
    gray = torch.full((1, 3, SIZE, SIZE), 128, dtype=torch.uint8)
    random.seed(0)
    theirs = np.stack(
        [corruptor.apply(Image.fromarray(gray[0].permute(1, 2, 0).numpy()), severity - 1) for _ in range(draws)]
    ).transpose(0, 3, 1, 2)
    ours = corrupt(gray.expand(draws, -1, -1, -1), name, severity, preset, rows=range(draws)).numpy()
    for statistic in (
        lambda out: (out != 128).any(1).mean((1, 2)),  # share of pixels changed
        lambda out: (out * (out != 128)).sum((1, 2, 3), dtype=np.int64) / np.maximum((out != 128).sum((1, 2, 3)), 1),
    ):
        a, b = statistic(theirs), statistic(ours)
        assert abs(a.mean() - b.mean()) <= 5 * np.sqrt(a.var(ddof=1) / draws + b.var(ddof=1) / draws)


@pytest.mark.parametrize(("preset", "name"), [(p, n) for _, p, n in OVERLAYS])
def test_overlays_depend_on_the_row_not_on_the_batch(preset, name):
    pytest.importorskip("medmnistc" if name == "stain_deposit" else "cv2", reason="optional package not installed")
    images = _images(n=3)
    whole = corrupt(images, name, 3, preset, rows=[7, 8, 9])
    assert torch.equal(whole[1:2], corrupt(images[1:2], name, 3, preset, rows=[8]))
    assert not torch.equal(whole[0], corrupt(images[0:1], name, 3, preset, rows=[9])[0])


def test_families_needing_a_missing_package_are_reported(monkeypatch):
    import importlib.util

    from encoderzoo import corruptions

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda m, *a: None if m in ("medmnistc", "cv2") else find_spec(m))
    assert set(corruptions.unavailable("pathmnist")) == {"stain_deposit"}
    assert set(corruptions.unavailable("dermamnist")) == {"characters"}
    assert corruptions.unavailable("chestmnist") == {}
    with pytest.raises(ValueError, match="pip install --no-deps medmnistc"):
        corrupt(_images(n=1), "stain_deposit", 1, "pathmnist", rows=[0])


def _features(name: str, draws: list[list]) -> dict[str, tuple[list, bool]]:
    """Per-draw counts and per-item fields of overlay draws, each with whether it is a small discrete support
    (positions are measured from both ends of their range, so their extremes show the range's bounds)."""
    items = [item for draw in draws for item in draw]
    features = {"count": ([len(d) for d in draws], True)}
    if name == "bubble":
        features |= {"radius": ([r for _, _, r in items], True)}
        features |= {"x - r": ([x - r for x, _, r in items], False), "x + r": ([x + r for x, _, r in items], False)}
        features |= {"y - r": ([y - r for _, y, r in items], False), "y + r": ([y + r for _, y, r in items], False)}
    elif name == "stain_deposit":
        features |= {"ink": ([int(ink.sum()) for ink, _, _ in items], True), "left": ([m[1] for m in items], False)}
        features["top"] = ([m[2] for m in items], False)
        features["right"] = ([left + ink.shape[1] for ink, left, _ in items], False)
        features["bottom"] = ([top + ink.shape[0] for ink, _, top in items], False)
    else:
        features |= {"letters": ([len(t) for t, *_ in items], True), "scale": ([w[3] for w in items], True)}
        features |= {"left": ([w[1] for w in items], False), "baseline": ([w[2] for w in items], False)}
        features["left + 8 letters"] = ([w[1] + 8 * len(w[0]) for w in items], False)
        features |= {"red": ([w[4][0] for w in items], False), "blue": ([w[4][2] for w in items], False)}
        features["letter"] = ([ord(c) for t, *_ in items for c in t], True)
    return features


@pytest.mark.parametrize("severity", [1, 5])
@pytest.mark.parametrize(("preset", "name"), [(p, n) for _, p, n in OVERLAYS])
def test_overlay_draws_follow_the_package_law(preset, name, severity):
    """Our per-row torch draws against the package's (Python's ``random``, replayed as in the test above, which
    shows the replay is the package's): over 2000 images, each drawn quantity has the same support (small discrete
    ones) or the same extremes (positions, colours: thousands of draws over at most 256 values miss an end with
    probability below 1e-3, and the seeds are fixed), and a mean within 5 standard errors of the difference."""
    from encoderzoo.corruptions import _ink_masks, draw_bubbles, draw_stains, draw_words, row_seed

    n, param = 2000, PRESETS[preset][name][severity - 1]
    generators = [torch.Generator().manual_seed(row_seed(0, name, severity, r)) for r in range(n)]
    if name == "stain_deposit":
        pytest.importorskip("medmnistc", reason="stain deposits read medmnistc's ink masks")
        inks = _ink_masks(str(max(3, severity - 1)))
        ours = [draw_stains(g, param, inks, SIZE, SIZE) for g in generators]
        replay = lambda: _replay_stains(param, inks, SIZE)  # noqa: E731
    elif name == "bubble":
        ours = [draw_bubbles(g, param, SIZE, SIZE) for g in generators]
        replay = lambda: _replay_bubbles(*param, SIZE)  # noqa: E731
    else:
        ours = [draw_words(g, param, SIZE, SIZE) for g in generators]
        replay = lambda: _replay_words(*param, SIZE)  # noqa: E731
    theirs = []
    for k in range(n):
        random.seed(k)
        theirs.append(replay())
    ours_f, theirs_f = _features(name, ours), _features(name, theirs)
    for key, (a, discrete) in theirs_f.items():
        a, b = np.asarray(a, dtype=np.float64), np.asarray(ours_f[key][0], dtype=np.float64)
        if discrete:
            assert set(a.tolist()) == set(b.tolist()), key
        assert (a.min(), a.max()) == (b.min(), b.max()), key
        assert abs(a.mean() - b.mean()) <= 5 * np.sqrt(a.var() / len(a) + b.var() / len(b)), key
