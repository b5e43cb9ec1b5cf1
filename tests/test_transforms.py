"""Preprocessing: input handling, and ``encoder.transform`` against each encoder's reference preprocessor on
real images (Hugging Face image processors, open_clip, timm), never against our own formulas.

Tolerance for the reference comparisons, in pixel units before normalization ([0, 1] scale): mean absolute
difference <= 0.5/255 and at most 0.2 % of values off by more than 1/255. The references resize uint8
images (PIL, or torchvision's uint8 kernels, which round and clip to uint8 between the horizontal and vertical
passes and at the end); we resize float tensors with the same kernels (antialiased bicubic, a = -0.5), so most
values differ by rounding (<= 0.5/255) and a few next to sharp edges by more (bicubic overshoot clipped
mid-way; up to 13/255 measured at single pixels). Measured: mean <= 0.34/255, <= 0.06 % beyond 1/255.
Each of these mistakes puts some image past the bound (share of values beyond 1/255): a one-pixel crop shift
60 %, a rounded instead of truncated long edge 54 %, bilinear for bicubic 26 %, no antialiasing 14 %, no clamp
after bicubic 0.6 %.
"""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch

import encoderzoo
from encoderzoo import InputError
from encoderzoo.transforms import Preprocess

LITE0 = encoderzoo.get_spec("efficientnet-lite0")


def test_uint8_grayscale_batch_becomes_normalized_rgb():
    images = torch.randint(0, 256, (4, 28, 28), dtype=torch.uint8)
    out = Preprocess(LITE0)(images)
    assert out.shape == (4, 3, 224, 224) and out.dtype == torch.float32
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])


def test_efficientnet_lite_uses_tf_lite_normalization():
    """The TF-Lite EfficientNet-Lite input convention, (pixel - 127) / 128: white 255 -> 1.0, black 0 -> -0.9921875."""
    images = torch.zeros(2, 3, 224, 224, dtype=torch.uint8)
    images[0] = 255
    out = Preprocess(LITE0)(images)
    assert torch.allclose(out[0], torch.full_like(out[0], 1.0), atol=1e-6)
    assert torch.allclose(out[1], torch.full_like(out[1], -127 / 128), atol=1e-6)


def test_uint8_float_and_uint16_inputs_agree():
    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 256, (2, 3, 224, 224), dtype=np.uint8)
    pre = Preprocess(LITE0)
    a = pre(u8)
    b = pre(torch.from_numpy(u8).float() / 255)
    c = pre(u8.astype(np.uint16) * 257)
    assert torch.allclose(a, b, atol=1e-6) and torch.allclose(a, c, atol=1e-5)


def test_channels_last_numpy_is_accepted():
    hwc = np.random.default_rng(0).integers(0, 256, (2, 50, 60, 3), dtype=np.uint8)
    out = Preprocess(LITE0)(hwc)
    ref = Preprocess(LITE0)(torch.from_numpy(hwc).permute(0, 3, 1, 2))
    assert torch.equal(out, ref)


def test_shortest_edge_then_centre_crop():
    spec = encoderzoo.get_spec("biomedclip")
    x = torch.zeros(1, 3, 224, 448)
    x[..., 112:336] = 1.0  # the central 224 columns are white
    out = Preprocess(spec)(x)
    assert out.shape == (1, 3, 224, 224)
    white = (1.0 - torch.tensor(spec.mean)) / torch.tensor(spec.std)
    assert torch.allclose(out[0, :, :, 5:-5].mean((1, 2)), white, atol=1e-3)


@pytest.mark.parametrize(
    "bad, message",
    [
        (torch.zeros(2, 4, 32, 32), "1 .grayscale. or 3 .RGB. channels, got 4"),
        (torch.zeros(32, 32), "expected a batch"),
        (torch.zeros(1, 3, 8, 8, dtype=torch.int64), "unsupported image dtype"),
        ("not an image", "torch.Tensor or numpy array"),
    ],
)
def test_bad_input_is_a_clear_error(bad, message):
    with pytest.raises(InputError, match=message):
        Preprocess(LITE0)(bad)


def test_embed_refuses_unpreprocessed_input():
    encoder = encoderzoo.load(encoderzoo.get_spec("dinov2-small").tiny_variant(), pretrained=False)
    with pytest.raises(InputError, match="call encoder.transform"):
        encoder.embed(torch.zeros(1, 3, 28, 28, dtype=torch.uint8))
    with pytest.raises(InputError, match=r"expects \(N, 3, 28, 28\)"):
        encoder.embed(torch.zeros(1, 3, 64, 64))
    assert encoder.embed(encoder.transform(torch.zeros(1, 64, 64, dtype=torch.uint8))).shape == (1, 32)


# --- against the reference preprocessors, on real images -------------------------------------------------

MEAN_TOL = 0.5 / 255
OFF_FRACTION_TOL = 0.002


@pytest.fixture(scope="module")
def real_images(request) -> dict[str, np.ndarray]:
    """uint8 images, gray and RGB, square, portrait and landscape, 28 to 600 px: scikit-image's photos (with
    crops chosen so the centre-crop margins are odd at 224, 256 and 518 px) and, when ../shared/data is there,
    a chest X-ray (224 px JPEG), a 28 px PneumoniaMNIST image (gray) and a 28 px blood-cell image (RGB)."""
    from PIL import Image
    from skimage import data

    images = {
        "camera 512x512 gray": data.camera(),
        "camera 512x387 gray": data.camera()[:, 60:447],
        "chelsea 300x451 rgb": data.chelsea(),
        "chelsea 218x451 rgb": data.chelsea()[40:258],
        "coffee 400x600 rgb": data.coffee(),
    }
    try:
        shared = request.getfixturevalue("shared_data")
    except pytest.skip.Exception:
        return images
    cxr = shared / "cxr-pneumonia-kermany"
    first = (cxr / "labels.csv").read_text().splitlines()[1].split(",")[0]
    images["cxr 224x224 jpeg"] = np.asarray(Image.open(cxr / first))
    with np.load(shared / "medmnist-format" / "pneumoniamnist_subset.npz") as z:
        images["pneumoniamnist 28x28 gray"] = z["val_images"][0]
    with np.load(shared / "medmnist-format" / "pbcblood_28.npz") as z:
        images["pbcblood 28x28 rgb"] = z["val_images"][0]
    return images


def _ours(spec, image: np.ndarray) -> torch.Tensor:
    return Preprocess(spec)(image[None])[0]


def _pil(image: np.ndarray):
    from PIL import Image

    return Image.fromarray(image).convert("RGB")


def _agreement(spec, ours: torch.Tensor, reference: torch.Tensor) -> tuple[float, float, float]:
    """(mean, fraction beyond 1/255, max) of |ours - reference| in pixel units ([0, 1] scale)."""
    assert ours.shape == reference.shape, f"shape {tuple(ours.shape)} vs reference {tuple(reference.shape)}"
    std = torch.tensor(spec.std).view(3, 1, 1)
    diff = ((ours - reference.float()) * std).abs()
    return diff.mean().item(), (diff > 1.01 / 255).float().mean().item(), diff.max().item()


def _assert_agrees(label: str, spec, images: dict, reference) -> None:
    for name, image in images.items():
        mean, off, worst = _agreement(spec, _ours(spec, image), reference(image))
        print(f"transform {label:34s} {name:26s} mean {mean * 255:.3f}/255 >1/255 {off:.4%} max {worst * 255:.1f}/255")
        assert mean <= MEAN_TOL and off <= OFF_FRACTION_TOL, (
            f"{label} on {name}: mean |diff| {mean * 255:.2f}/255, {off:.2%} of values beyond 1/255"
        )


def _hf_processors(name: str) -> list:
    """transformers' image processor class ``name``: its default (torchvision) backend and, where this
    transformers has it (>= 5), the PIL backend ``namePil``."""
    import transformers

    return [cls for cls in (getattr(transformers, name), getattr(transformers, f"{name}Pil", None)) if cls]


@pytest.mark.parametrize("backend", [0, 1], ids=["torchvision", "pil"])
def test_rad_dino_matches_its_hugging_face_processor(real_images, backend):
    """microsoft/rad-dino's preprocessor_config.json: BitImageProcessor, shortest edge 518, bicubic, centre
    crop 518, mean 0.5307, std 0.2583 (values written here, not read from our spec)."""
    classes = _hf_processors("BitImageProcessor")
    if backend >= len(classes):
        pytest.skip("this transformers has no PIL-backend image processors")
    processor = classes[backend](
        do_resize=True,
        size={"shortest_edge": 518},
        resample=3,  # PIL bicubic
        do_center_crop=True,
        crop_size={"height": 518, "width": 518},
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=[0.5307] * 3,
        image_std=[0.2583] * 3,
        do_convert_rgb=True,
    )
    spec = encoderzoo.get_spec("rad-dino")
    _assert_agrees(
        f"rad-dino vs {classes[backend].__name__}",
        spec,
        real_images,
        lambda image: processor(_pil(image), return_tensors="pt")["pixel_values"][0],
    )


def _timm_transform(architecture: str):
    from timm.data import create_transform, resolve_data_config

    with torch.device("meta"):
        model = timm.create_model(architecture, pretrained=False)
    config = resolve_data_config({}, model=model)
    return config, create_transform(**config)


@pytest.mark.parametrize("name", ["dinov2-small", "dinov3-small"])
def test_dinov2_and_dinov3_match_timm_data_config(real_images, name):
    """timm's eval transform from the checkpoint's pretrained config (resolve_data_config + create_transform:
    torchvision Resize of the short edge, CenterCrop, ToTensor, Normalize, on PIL images)."""
    spec = encoderzoo.get_spec(name)
    config, transform = _timm_transform(f"{spec.architecture}.{spec.source.repo_id.split('.')[-1]}")
    assert config["input_size"] == (3, spec.input_size, spec.input_size) and config["crop_pct"] == 1.0
    assert config["interpolation"] == spec.interpolation and tuple(config["mean"]) == spec.mean
    _assert_agrees(f"{name} vs timm", spec, real_images, lambda image: transform(_pil(image)))


def test_dinov2_matches_transformers_bit_processor(real_images):
    """transformers' BitImageProcessor with DINOv2's values at timm's 518 px (ImageNet mean/std, bicubic).

    facebook/dinov2-*'s own processor config resizes to 256 and crops 224, DINOv2's linear-evaluation
    transform; we follow timm's 518 px. Hugging Face's processors centre-crop an odd margin at its floor,
    torchvision (timm, DINOv2's code) rounds it, so images with odd margins at 518 px are left out here
    (they are covered by the timm comparison)."""
    processor = _hf_processors("BitImageProcessor")[0](
        size={"shortest_edge": 518},
        resample=3,
        crop_size={"height": 518, "width": 518},
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    )

    def even_margin(image: np.ndarray) -> bool:
        short, long = sorted(image.shape[:2])
        return (int(518 * long / short) - 518) % 2 == 0

    images = {k: v for k, v in real_images.items() if even_margin(v)}
    assert len(images) >= 3
    spec = encoderzoo.get_spec("dinov2-small")
    _assert_agrees(
        "dinov2 vs BitImageProcessor",
        spec,
        images,
        lambda image: processor(_pil(image), return_tensors="pt")["pixel_values"][0],
    )


def test_biomedclip_matches_open_clip_preprocess(real_images):
    """open_clip's eval preprocess for BiomedCLIP's open_clip_config.json (preprocess_cfg: OpenAI CLIP
    mean/std; open_clip's defaults for the rest: 224, bicubic, resize the shortest edge, centre crop)."""
    import open_clip

    transform = open_clip.image_transform(
        224,
        is_train=False,
        mean=(0.48145466, 0.4578275, 0.40821073),
        std=(0.26862954, 0.26130258, 0.27577711),
        resize_mode="shortest",
        interpolation="bicubic",
    )
    spec = encoderzoo.get_spec("biomedclip")
    _assert_agrees("biomedclip vs open_clip", spec, real_images, lambda image: transform(_pil(image)))


def _tf_bilinear(image: np.ndarray, size: int) -> np.ndarray:
    """``tf.image.resize(image, [size, size], "bilinear", antialias=False)`` in numpy: half-pixel centres,
    source coordinate ``(i + 0.5) * in / out - 0.5`` clamped to the image, linear blend of two neighbours."""

    def axis(length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        source = np.clip((np.arange(size) + 0.5) * length / size - 0.5, 0, length - 1)
        low = np.floor(source).astype(int)
        return low, np.minimum(low + 1, length - 1), source - low

    x = image.astype(np.float64) / 255
    x = np.repeat(x[..., None], 3, axis=-1) if x.ndim == 2 else x
    r0, r1, fr = axis(x.shape[0])
    c0, c1, fc = axis(x.shape[1])
    rows = x[r0] * (1 - fr)[:, None, None] + x[r1] * fr[:, None, None]
    return rows[:, c0] * (1 - fc)[None, :, None] + rows[:, c1] * fc[None, :, None]


def test_medsiglip_resize_is_tensorflow_bilinear_without_antialias(real_images):
    """MedSigLIP's model card resizes with ``tf.image.resize(..., [448, 448], method="bilinear",
    antialias=False)`` before its processor; ours must equal that (written out in numpy) at every size, up to
    float32 rounding of the sampling positions (measured 3e-5 after normalization; one uint8 step is 8e-3)."""
    spec = encoderzoo.get_spec("medsiglip-448")
    for name, image in real_images.items():
        expected = (torch.from_numpy(_tf_bilinear(image, 448)).permute(2, 0, 1).float() - 0.5) / 0.5
        diff = (_ours(spec, image) - expected).abs().max().item()
        print(f"transform medsiglip vs tf bilinear {name:26s} max {diff:.1e}")
        assert diff < 1e-4, f"{name}: {diff:.2e}"


@pytest.mark.parametrize("backend", [0, 1], ids=["torchvision", "pil"])
def test_medsiglip_matches_siglip_processor_where_it_does_not_shrink(real_images, backend):
    """SiglipImageProcessor at 448 x 448, bilinear, mean/std 0.5. Hugging Face's resize antialiases (PIL;
    torchvision with antialias=True), which the model card's TensorFlow resize does not: they agree when no
    side shrinks (antialiasing is then a no-op) and differ when downscaling, which is checked too, so this
    note stays true for the transformers installed."""
    classes = _hf_processors("SiglipImageProcessor")
    if backend >= len(classes):
        pytest.skip("this transformers has no PIL-backend image processors")
    processor = classes[backend](
        do_resize=True, size={"height": 448, "width": 448}, resample=2, image_mean=[0.5] * 3, image_std=[0.5] * 3
    )
    spec = encoderzoo.get_spec("medsiglip-448")

    def reference(image: np.ndarray) -> torch.Tensor:
        return processor(_pil(image), return_tensors="pt")["pixel_values"][0]

    growing = {k: v for k, v in real_images.items() if max(v.shape[:2]) <= 448}
    shrinking = {k: v for k, v in real_images.items() if min(v.shape[:2]) > 448}
    assert growing and shrinking
    _assert_agrees(f"medsiglip vs {classes[backend].__name__}", spec, growing, reference)
    for name, image in shrinking.items():
        mean, off, _ = _agreement(spec, _ours(spec, image), reference(image))
        assert mean > MEAN_TOL, f"{name}: the processor no longer antialiases? mean diff {mean * 255:.2f}/255"
