"""MedMNIST-C acquisition artefacts (Di Salvo et al. 2024) re-implemented in torch, batched, on any device.

The ``medmnistc`` package applies each corruption to one PIL image at a time on the CPU (PIL, OpenCV,
scikit-image, ImageMagick through Wand) and pins ``scikit-image==0.23.2`` and ``medmnist==3.0.1``, older than
ours; here every family is a tensor operation on a ``(N, C, H, W)`` uint8 batch, with the package's published
parameters per dataset (``PRESETS``) and its pixel conventions:

- images are corrupted at 224 x 224 (the MedMNIST-C resolution: smaller images are first resized, bilinear),
  as RGB (grayscale expanded), and a grayscale input is turned back into one channel with PIL's ``L``
  weights; outputs are uint8, truncated like ``numpy.astype(uint8)`` where the package truncates and rounded
  where PIL / torchvision round;
- brightness and contrast follow PIL ``ImageEnhance`` (a blend with black or with the mean gray level), gamma
  torchvision's PIL lookup table, saturation scikit-image's HSV round trip, pixelation PIL's two-pass BOX
  resampling, Gaussian blur torchvision's kernel, defocus blur the package's anti-aliased disk, JPEG the
  libjpeg codec through ``torchvision.io`` (as PIL, 4:2:0 chroma subsampling; the one family run on the CPU);
- noise is drawn per image from a generator seeded by ``(seed, corruption, severity, row)``, so a row's
  corruption does not depend on the batch it falls in.

Motion blur follows ImageMagick 6's ``MotionBlurImage`` (a one-sided Gaussian along an angle drawn per image in
[-45, 45) degrees, edge pixels repeated). Zoom blur averages scipy-style bilinear centre zooms; black corners
keep OpenCV's filled disc. The microscopy / dermatoscopy overlays draw what the package draws with Python's
``random`` from per-row torch generators: bubbles (PIL's ellipse raster, pasted with PIL's rounding), stain
deposits (the package's own ink masks, read from the installed ``medmnistc``) and characters (OpenCV's
``putText`` on the CPU). ``unavailable(preset)`` names the families whose optional package is missing;
``NOT_IMPLEMENTED`` is empty for every preset.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

SIZE = 224
SEVERITIES = (1, 2, 3, 4, 5)

# (family, five severity parameters) per MedMNIST dataset, as published in medmnistc 0.1.0
# (corruptions/registry.py); families we do not implement are in NOT_IMPLEMENTED.
PRESETS: dict[str, dict[str, tuple]] = {
    "bloodmnist": {
        "pixelate": (0.6, 0.5, 0.40, 0.30, 0.25),
        "jpeg_compression": (50, 30, 15, 10, 7),
        "defocus_blur": ((2, 0.01), (3, 0.1), (4, 0.1), (5, 0.1), (6, 0.1)),
        "motion_blur": ((3, 3), (5, 5), (10, 5), (10, 7), (10, 9)),
        "brightness_up": (1.1, 1.2, 1.3, 1.35, 1.4),
        "brightness_down": (0.9, 0.8, 0.7, 0.6, 0.5),
        "contrast_up": (1.1, 1.15, 1.2, 1.25, 1.3),
        "contrast_down": (0.9, 0.8, 0.7, 0.6, 0.5),
        "saturate": (0.05, 0.10, 0.15, 0.17, 0.20),
        "stain_deposit": (1, 2, 3, 3, 3),
        "bubble": ((5, 10), (7, 10), (10, 10), (12, 12), (15, 12)),
    },
    "pathmnist": {
        "pixelate": (0.8, 0.6, 0.40, 0.30, 0.25),
        "jpeg_compression": (50, 30, 15, 10, 7),
        "defocus_blur": ((3, 0.1), (4, 0.1), (5, 0.2), (6, 0.2), (7, 0.3)),
        "motion_blur": ((5, 5), (10, 5), (15, 5), (15, 8), (15, 12)),
        "brightness_up": (1.1, 1.15, 1.2, 1.22, 1.25),
        "brightness_down": (0.85, 0.80, 0.75, 0.72, 0.70),
        "contrast_up": (1.1, 1.2, 1.3, 1.4, 1.6),
        "contrast_down": (0.8, 0.7, 0.6, 0.55, 0.5),
        "saturate": (0.05, 0.10, 0.15, 0.20, 0.25),
        "stain_deposit": (1, 2, 3, 4, 5),
        "bubble": ((7, 15), (10, 15), (12, 15), (15, 20), (17, 25)),
    },
    "dermamnist": {
        "pixelate": (0.7, 0.5, 0.40, 0.30, 0.25),
        "jpeg_compression": (30, 20, 15, 10, 7),
        "gaussian_noise": (0.04, 0.08, 0.12, 0.18, 0.26),
        "speckle_noise": (0.05, 0.15, 0.2, 0.35, 0.45),
        "impulse_noise": (0.01, 0.03, 0.06, 0.09, 0.17),
        "shot_noise": (60, 25, 18, 10, 5),
        "defocus_blur": ((4, 0.1), (5, 0.2), (6, 0.3), (7, 0.4), (8, 0.5)),
        "motion_blur": ((10, 5), (15, 5), (15, 8), (15, 12), (20, 15)),
        # the package's np.arange(1, stop, step) zoom factors (float steps: 1.11 and 1.3 are included)
        "zoom_blur": tuple(
            tuple(np.arange(1, stop, step).tolist())
            for stop, step in ((1.11, 0.01), (1.16, 0.01), (1.21, 0.02), (1.26, 0.02), (1.31, 0.03))
        ),
        "brightness_up": (1.1, 1.2, 1.3, 1.4, 1.5),
        "brightness_down": (0.9, 0.8, 0.7, 0.6, 0.5),
        "contrast_up": (1.1, 1.2, 1.3, 1.4, 1.6),
        "contrast_down": (0.8, 0.7, 0.6, 0.5, 0.4),
        "black_corner": (1.10, 1.05, 1.00, 0.90, 0.95),
        "characters": ((1, 6, 0.14), (2, 7, 0.15), (3, 8, 0.16), (4, 9, 0.17), (6, 10, 0.18)),
    },
    "pneumoniamnist": {
        "pixelate": (0.8, 0.7, 0.6, 0.5, 0.40),
        "jpeg_compression": (50, 30, 15, 10, 7),
        "gaussian_noise": (0.04, 0.05, 0.06, 0.07, 0.08),
        "speckle_noise": (0.05, 0.07, 0.10, 0.15, 0.20),
        "impulse_noise": (0.005, 0.01, 0.013, 0.017, 0.02),
        "shot_noise": (300, 200, 150, 100, 80),
        "gaussian_blur": (3, 5, 7, 9, 11),
        "brightness_up": (1.1, 1.2, 1.3, 1.4, 1.5),
        "brightness_down": (0.9, 0.8, 0.7, 0.6, 0.5),
        "contrast_up": (1.1, 1.2, 1.3, 1.4, 1.6),
        "contrast_down": (0.9, 0.8, 0.7, 0.6, 0.4),
        "gamma_corr_up": (1.1, 1.2, 1.3, 1.4, 1.6),
        "gamma_corr_down": (0.9, 0.8, 0.7, 0.6, 0.4),
    },
    "chestmnist": {
        "pixelate": (0.30, 0.25, 0.20, 0.15, 0.10),
        "jpeg_compression": (50, 30, 15, 10, 7),
        "gaussian_noise": (0.04, 0.08, 0.12, 0.18, 0.26),
        "speckle_noise": (0.05, 0.15, 0.2, 0.35, 0.45),
        "impulse_noise": (0.01, 0.03, 0.06, 0.09, 0.17),
        "shot_noise": (60, 25, 18, 10, 5),
        "gaussian_blur": (3, 5, 7, 9, 11),
        "brightness_up": (1.1, 1.2, 1.3, 1.4, 1.5),
        "brightness_down": (0.9, 0.8, 0.7, 0.6, 0.5),
        "contrast_up": (1.1, 1.2, 1.3, 1.4, 1.6),
        "contrast_down": (0.9, 0.8, 0.7, 0.6, 0.4),
        "gamma_corr_up": (1.1, 1.2, 1.3, 1.4, 1.6),
        "gamma_corr_down": (0.9, 0.8, 0.7, 0.6, 0.4),
    },
    "breastmnist": {
        "pixelate": (0.30, 0.25, 0.20, 0.15, 0.10),
        "jpeg_compression": (50, 30, 15, 10, 7),
        "speckle_noise": (0.10, 0.15, 0.20, 0.25, 0.30),
        "motion_blur": ((5, 5), (9, 7), (9, 10), (13, 10), (17, 12)),
        "brightness_up": (1.4, 1.5, 1.6, 1.8, 2.0),
        "brightness_down": (0.55, 0.5, 0.45, 0.4, 0.3),
        "contrast_down": (0.9, 0.8, 0.7, 0.6, 0.4),
    },
}
NOT_IMPLEMENTED = {
    "bloodmnist": [],
    "pathmnist": [],
    "dermamnist": [],
    "pneumoniamnist": [],
    "chestmnist": [],
    "breastmnist": [],
}


def _uint8(x: torch.Tensor) -> torch.Tensor:
    """float in [0, 255] -> uint8, truncating (numpy ``astype(uint8)`` after a clip)."""
    return x.clamp(0, 255).to(torch.uint8)


def brightness(x: torch.Tensor, factor: float, **_) -> torch.Tensor:
    """PIL ``ImageEnhance.Brightness``: blend with black, truncated."""
    return _uint8(torch.trunc(x.float() * np.float32(factor)))


def _luma(x: torch.Tensor) -> torch.Tensor:
    """PIL's RGB -> L: ``(19595 R + 38470 G + 7471 B + 0x8000) >> 16`` on uint8 values, as int32."""
    x = x.to(torch.int32)
    return (19595 * x[:, 0] + 38470 * x[:, 1] + 7471 * x[:, 2] + 0x8000) >> 16


def contrast(x: torch.Tensor, factor: float, **_) -> torch.Tensor:
    """PIL ``ImageEnhance.Contrast``: blend with the image's mean gray level (rounded), truncated."""
    mean = torch.floor(_luma(x).double().mean((1, 2)) + 0.5).float()[:, None, None, None]
    return _uint8(torch.trunc(mean + np.float32(factor) * (x.float() - mean)))


def gamma(x: torch.Tensor, value: float, **_) -> torch.Tensor:
    """torchvision ``adjust_gamma`` on PIL images: the lookup table ``int(255.999 * (v / 255) ** gamma)``."""
    table = torch.tensor([int((255 + 1 - 1e-3) * pow(v / 255.0, value)) for v in range(256)], dtype=torch.uint8)
    return table.to(x.device)[x.long()]


def saturate(x: torch.Tensor, amount: float, **_) -> torch.Tensor:
    """scikit-image HSV round trip adding ``amount`` to the saturation, truncated to uint8.

    With hue and value fixed, each channel is ``V (1 - S w)`` with ``w = (V - c) / (V - min)``, so only S changes;
    gray pixels have hue 0 in scikit-image, i.e. ``w = (0, 1, 1)``.
    """
    rgb = x.double() / 255.0
    high, low = rgb.max(1, keepdim=True).values, rgb.min(1, keepdim=True).values
    delta = high - low
    gray = delta == 0
    w = torch.where(
        gray,
        torch.tensor([0.0, 1.0, 1.0], dtype=rgb.dtype, device=x.device)[None, :, None, None],
        (high - rgb) / torch.where(gray, torch.ones_like(delta), delta),
    )
    s = torch.where(high > 0, delta / torch.where(high > 0, high, torch.ones_like(high)), torch.zeros_like(high))
    s = (s + amount).clamp(0, 1)
    return _uint8(torch.trunc((high * (1 - s * w)).clamp(0, 1) * 255))


def _box_matrix(size_in: int, size_out: int) -> torch.Tensor:
    """PIL's BOX resampling weights ``(size_out, size_in)`` (support 0.5, scaled when downsampling)."""
    scale = size_in / size_out
    filterscale = max(scale, 1.0)
    support = 0.5 * filterscale
    weights = torch.zeros(size_out, size_in, dtype=torch.float64)
    for i in range(size_out):
        center = (i + 0.5) * scale
        lo, hi = max(int(center - support + 0.5), 0), min(int(center + support + 0.5), size_in)
        taps = torch.arange(lo, hi, dtype=torch.float64)
        arg = (taps - center + 0.5) / filterscale
        w = ((arg >= -0.5) & (arg < 0.5)).double()
        weights[i, lo:hi] = w / w.sum()
    return weights


def _box_resize(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """PIL ``resize(BOX)`` on uint8: a horizontal pass then a vertical one, each rounded to uint8."""
    wx = _box_matrix(x.shape[-1], width).to(x.device, torch.float32)
    wy = _box_matrix(x.shape[-2], height).to(x.device, torch.float32)
    horizontal = torch.floor(torch.einsum("nchw,vw->nchv", x.float(), wx) + 0.5).clamp(0, 255)
    return torch.floor(torch.einsum("nchw,uh->ncuw", horizontal, wy) + 0.5).clamp(0, 255).to(torch.uint8)


def pixelate(x: torch.Tensor, factor: float, **_) -> torch.Tensor:
    """PIL BOX down to ``int(size * factor)`` and back."""
    h, w = x.shape[-2:]
    return _box_resize(_box_resize(x, int(h * factor), int(w * factor)), h, w)


def jpeg_compression(x: torch.Tensor, quality: int, **_) -> torch.Tensor:
    """Encode and decode at ``quality`` with libjpeg through ``torchvision.io``, on the CPU (the codec the package
    uses through PIL; a GPU encoder need not produce the same bytes), then back to ``x``'s device."""
    from torchvision.io import decode_jpeg, encode_jpeg

    images = [im.contiguous() for im in x.cpu()]
    decoded = decode_jpeg(encode_jpeg(images, quality=int(quality)))
    return torch.stack(decoded).to(x.device)


def _reflect_conv(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Each channel correlated with the 2D ``kernel``, reflect-101 borders (OpenCV's and torch's ``reflect``)."""
    kh, kw = kernel.shape
    padded = F.pad(x, (kw // 2, kw // 2, kh // 2, kh // 2), mode="reflect")
    weight = kernel.to(x.device, x.dtype)[None, None].expand(x.shape[1], 1, kh, kw)
    return F.conv2d(padded, weight, groups=x.shape[1])


def gaussian_blur(x: torch.Tensor, kernel_size: int, **_) -> torch.Tensor:
    """torchvision ``gaussian_blur``: sigma ``0.3 ((k - 1) / 2 - 1) + 0.8``, reflect borders, rounded."""
    sigma = 0.3 * ((kernel_size - 1) * 0.5 - 1) + 0.8
    half = (kernel_size - 1) * 0.5
    g = torch.exp(-0.5 * (torch.linspace(-half, half, kernel_size) / sigma) ** 2)
    g = (g / g.sum()).float()
    return torch.round(_reflect_conv(x.float(), torch.outer(g, g))).clamp(0, 255).to(torch.uint8)


def _disk(radius: float, alias_blur: float) -> torch.Tensor:
    """The package's anti-aliased disk: a 17 x 17 (or ``2 r + 1``) disk, normalized, blurred by a 3 x 3
    (5 x 5 past radius 8) Gaussian of sigma ``alias_blur`` with reflect-101 borders."""
    span = np.arange(-8, 9) if radius <= 8 else np.arange(-radius, radius + 1)
    ksize = 3 if radius <= 8 else 5
    xx, yy = np.meshgrid(span, span)
    disk = ((xx**2 + yy**2) <= radius**2).astype(np.float64)
    disk /= disk.sum()
    taps = np.arange(ksize) - (ksize - 1) / 2
    g = np.exp(-(taps**2) / (2 * alias_blur**2))
    g /= g.sum()
    blurred = _reflect_conv(torch.from_numpy(disk)[None, None], torch.from_numpy(np.outer(g, g)))
    return blurred[0, 0].float()


def defocus_blur(x: torch.Tensor, params: tuple[float, float], **_) -> torch.Tensor:
    """Correlation with the anti-aliased disk of ``(radius, alias_blur)`` on [0, 1] values, truncated."""
    radius, alias = params
    out = _reflect_conv(x.float() / 255.0, _disk(radius, alias))
    return _uint8(torch.trunc(out.clamp(0, 1) * 255))


def motion_kernel(radius: float, sigma: float, angle: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ImageMagick 6 ``MotionBlurImage``: ``2 ceil(radius) + 1`` taps of a one-sided Gaussian of ``sigma``
    (normalized) at integer offsets ``(ceil(i cos a - 0.5), ceil(i sin a - 0.5))`` along the angle ``a``."""
    width = int(2 * np.ceil(radius) + 1)
    taps = np.arange(width, dtype=np.float64)
    kernel = np.exp(-(taps**2) / (2.0 * sigma * sigma))
    kernel /= kernel.sum()
    a = np.deg2rad(angle)
    dx = np.ceil(taps * np.cos(a) - 0.5).astype(np.int64)
    dy = np.ceil(taps * np.sin(a) - 0.5).astype(np.int64)
    return kernel, dx, dy


def motion_blur_at(x: torch.Tensor, radius: float, sigma: float, angle: float) -> torch.Tensor:
    """One motion blur of ``x`` (``(C, H, W)`` uint8) at ``angle`` degrees: ImageMagick's weighted sum of
    edge-clamped shifted copies, truncated to uint8 (float64 here; ImageMagick's own arithmetic differs in the last
    bits, so a sum within ~1e-6 of an integer can land one level apart)."""
    kernel, dx, dy = motion_kernel(radius, sigma, angle)
    h, w = x.shape[-2:]
    rows, cols = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
    total = torch.zeros(x.shape, dtype=torch.float64, device=x.device)
    source = x.double()
    for k, ox, oy in zip(kernel, dx, dy, strict=True):
        r, c = (rows + int(oy)).clamp(0, h - 1), (cols + int(ox)).clamp(0, w - 1)
        total += float(k) * source[:, r][:, :, c]
    return _uint8(torch.floor(total))


def motion_blur(x: torch.Tensor, params: tuple[float, float], generators=None) -> torch.Tensor:
    """Motion blur of ``(radius, sigma)`` at an angle drawn per image, uniform in [-45, 45) degrees."""
    radius, sigma = params
    if generators is None or len(generators) != len(x):
        raise ValueError("motion blur draws an angle per image: it needs one torch.Generator per image")
    angles = [float(torch.rand((), generator=g, device=x.device)) * 90.0 - 45.0 for g in generators]
    return torch.stack([motion_blur_at(im, radius, sigma, a) for im, a in zip(x, angles, strict=True)])


def gaussian_noise(x: torch.Tensor, std: float, generators=None) -> torch.Tensor:
    noise = _per_image(x, generators, lambda shape, g: torch.randn(shape, generator=g, device=x.device))
    return _uint8(torch.trunc((x.float() / 255.0 + std * noise).clamp(0, 1) * 255))


def speckle_noise(x: torch.Tensor, std: float, generators=None) -> torch.Tensor:
    noise = _per_image(x, generators, lambda shape, g: torch.randn(shape, generator=g, device=x.device))
    v = x.float() / 255.0
    return _uint8(torch.trunc((v + v * std * noise).clamp(0, 1) * 255))


def impulse_noise(x: torch.Tensor, amount: float, generators=None) -> torch.Tensor:
    """scikit-image ``random_noise(mode='s&p')``: each value flipped with probability ``amount``, to 0 or 255."""
    u = _per_image(x, generators, lambda shape, g: torch.rand((2, *shape), generator=g, device=x.device))
    flipped, salt = u[:, 0] <= amount, u[:, 1] <= 0.5
    out = x.clone()
    out[flipped & salt] = 255
    out[flipped & ~salt] = 0
    return out


def shot_noise(x: torch.Tensor, photons: float, generators=None) -> torch.Tensor:
    rate = x.double() / 255.0 * photons
    counts = _per_image(x, generators, lambda shape, g: None, rate=rate)
    return _uint8(torch.trunc((counts / photons).clamp(0, 1) * 255))


def _per_image(x: torch.Tensor, generators, draw: Callable, rate: torch.Tensor | None = None) -> torch.Tensor:
    """One draw per image from its own generator (``generators[i]``), stacked."""
    if generators is None or len(generators) != len(x):
        raise ValueError("noise corruptions need one torch.Generator per image")
    if rate is not None:
        return torch.stack([torch.poisson(r, generator=g) for r, g in zip(rate, generators, strict=True)])
    return torch.stack([draw(tuple(im.shape), g) for im, g in zip(x, generators, strict=True)])


def _zoom_taps(size: int, factor: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The package's ``clipped_zoom`` along one axis: the centre ``ceil(size / factor)`` pixels (from ``top``)
    zoomed by scipy ``zoom(order=1)`` to ``round(ch factor)`` pixels (coordinate ``k (ch - 1) / (out - 1)``,
    weights ``1 - t`` and ``1 - (1 - t)`` as scipy computes them), then the centre ``size`` pixels kept. Returns the
    two source indices and their weights per output pixel."""
    ch = int(np.ceil(size / factor))
    top = (size - ch) // 2
    out = int(round(ch * factor))
    trim = (out - size) // 2
    coordinate = np.arange(trim, trim + size, dtype=np.float64) * ((ch - 1) / (out - 1))
    low = np.floor(coordinate)
    w0 = 1.0 - (coordinate - low)
    w1 = 1.0 - w0
    i0 = low.astype(np.int64)
    return top + i0, top + np.minimum(i0 + 1, ch - 1), w0, w1


def zoom_blur(x: torch.Tensor, factors: tuple[float, ...], **_) -> torch.Tensor:
    """The mean of the image and its centre zooms by each factor (bilinear), on float32 ``v / 255``, truncated.

    Each zoom is interpolated in float64 and rounded to float32 (scipy's arithmetic), summed in float32 in the
    package's order, so the result agrees with it up to the last bit of a float32 sum."""
    h, w = x.shape[-2:]
    if h != w:
        raise ValueError(f"zoom blur works on square images (the package's clipped_zoom), got {h} x {w}")
    image = (x.double() / 255.0).float()
    source = image.double()
    total = torch.zeros_like(image)
    for factor in factors:
        i0, i1, w0, w1 = (torch.from_numpy(a).to(x.device) for a in _zoom_taps(h, float(factor)))
        rows0, rows1 = source[:, :, i0], source[:, :, i1]
        wy0, wy1 = w0[:, None], w1[:, None]
        # scipy's order: each tap's value times the row weight, then the column weight, summed tap by tap
        zoomed = rows0[..., i0] * wy0 * w0 + rows0[..., i1] * wy0 * w1
        zoomed = zoomed + rows1[..., i0] * wy1 * w0 + rows1[..., i1] * wy1 * w1
        total += zoomed.float()
    blurred = (image + total) / (len(factors) + 1)
    return _uint8(torch.trunc(blurred.clamp(0, 1) * 255))


def black_corner(x: torch.Tensor, multiplier: float, **_) -> torch.Tensor:
    """Everything outside the centred disc of radius ``int(min(h, w) // 2 * multiplier)`` set to black (OpenCV's
    filled circle: the pixels with ``dx^2 + dy^2 <= r^2`` from the centre ``(w // 2, h // 2)``)."""
    h, w = x.shape[-2:]
    cx, cy = w // 2, h // 2
    radius = int(min(cx, cy, w - cx, h - cy) * multiplier)
    yy = torch.arange(h, device=x.device)[:, None] - cy
    xx = torch.arange(w, device=x.device)[None, :] - cx
    return x * (xx * xx + yy * yy <= radius * radius).to(x.dtype)


def _randint(generator: torch.Generator, low: int, high: int, device) -> int:
    """Uniform integer in ``[low, high]`` (both included, as Python's ``random.randint``)."""
    return int(torch.randint(low, high + 1, (), generator=generator, device=device))


_STAMPS: dict[int, torch.Tensor] = {}


def _disc(radius: int) -> torch.Tensor:
    """PIL's filled ellipse in the box ``(-r, -r, r, r)`` as a ``(2 r + 1)^2`` bool stamp (PIL's own rasterizer,
    which is no distance threshold; drawn once per radius, integer boxes translate exactly)."""
    if radius not in _STAMPS:
        from PIL import Image, ImageDraw

        canvas = Image.new("L", (2 * radius + 1, 2 * radius + 1), 0)
        ImageDraw.Draw(canvas).ellipse((0, 0, 2 * radius, 2 * radius), fill=255)
        _STAMPS[radius] = torch.from_numpy(np.asarray(canvas) == 255)
    return _STAMPS[radius]


BUBBLE_BORDER, BUBBLE_ALPHA = 2, 100  # the package's ring width and inner alpha (the ring is alpha + 30)


def bubble_at(x: torch.Tensor, circles: list[tuple[int, int, int]]) -> torch.Tensor:
    """``x`` (``(C, H, W)`` uint8) under white bubbles at ``(cx, cy, radius)``: an alpha layer where each bubble
    writes ``alpha + 30`` on its disc of ``radius + 2`` and ``alpha`` on its disc of ``radius`` (later bubbles
    overwrite), pasted as PIL does: ``(v (255 - a) + 255 a) / 255`` rounded (PIL's ``DIV255``)."""
    h, w = x.shape[-2:]
    alpha = torch.zeros((h, w), dtype=torch.int32, device=x.device)
    for cx, cy, radius in circles:
        for r, value in ((radius + BUBBLE_BORDER, BUBBLE_ALPHA + 30), (radius, BUBBLE_ALPHA)):
            stamp = _disc(r).to(x.device)
            y0, x0 = cy - r, cx - r
            ys, xs = slice(max(y0, 0), min(y0 + 2 * r + 1, h)), slice(max(x0, 0), min(x0 + 2 * r + 1, w))
            cut = stamp[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]
            alpha[ys, xs] = torch.where(cut, value, alpha[ys, xs])
    blend = x.to(torch.int32) * (255 - alpha) + 255 * alpha + 128
    return (((blend >> 8) + blend) >> 8).to(torch.uint8)


def bubble(x: torch.Tensor, params: tuple[int, int], generators=None) -> torch.Tensor:
    """The package's draws per image: ``randint(7, max_bubbles)`` bubbles, each of radius ``randint(3, max_radius)``
    centred at ``randint(r, size - r)`` (x, then y)."""
    h, w = x.shape[-2:]
    gs = _generators(x, generators)
    return torch.stack([bubble_at(image, draw_bubbles(g, params, h, w)) for image, g in zip(x, gs, strict=True)])


def draw_bubbles(g: torch.Generator, params: tuple[int, int], h: int, w: int) -> list[tuple[int, int, int]]:
    """One image's bubbles ``(cx, cy, radius)`` for ``(max_radius, max_bubbles)``."""
    max_radius, max_bubbles = params
    circles = []
    for _ in range(_randint(g, 7, max_bubbles, g.device)):
        r = _randint(g, 3, max_radius, g.device)
        circles.append((_randint(g, r, w - r, g.device), _randint(g, r, h - r, g.device), r))
    return circles


def _ink_masks(key: str) -> np.ndarray:
    """The package's bundled ink masks (``assets/inks.npz``, Apache-2.0) of one size: read from the installed
    ``medmnistc``, not copied here."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("medmnistc")
    if spec is None or spec.origin is None:
        raise ValueError(f"stain_deposit draws medmnistc's ink masks: {UNAVAILABLE['stain_deposit'][1]}")
    with np.load(Path(spec.origin).parent / "assets" / "inks.npz", allow_pickle=True) as inks:
        return np.asarray(inks[key]).astype(bool)


def stain_at(x: torch.Tensor, marks: list[tuple[np.ndarray, int, int]]) -> torch.Tensor:
    """``x`` (``(C, H, W)`` uint8) with each ink mask set to black at its top-left corner ``(left, top)``."""
    out = x.clone()
    for ink, left, top in marks:
        ih, iw = ink.shape
        region = out[:, top : top + ih, left : left + iw]
        region[:, torch.from_numpy(ink).to(x.device)] = 0
    return out


def stain_deposit(x: torch.Tensor, max_marks: int, generators=None, severity: int = 1) -> torch.Tensor:
    """The package's draws per image: ``randint(1, max_marks)`` marks (``max_marks`` when it is 1), each a random
    ink of the set ``max(3, severity - 1)`` (the package keys the sets by its 0-based severity index: 24 px masks
    for severities 1-4, 32 px for 5) at ``randint(10, size - ink - 10)`` (x, then y)."""
    inks = _ink_masks(str(max(3, severity - 1)))
    h, w = x.shape[-2:]
    gs = _generators(x, generators)
    return torch.stack([stain_at(image, draw_stains(g, max_marks, inks, h, w)) for image, g in zip(x, gs, strict=True)])


def draw_stains(g: torch.Generator, max_marks: int, inks: np.ndarray, h: int, w: int) -> list:
    """One image's marks ``(ink, left, top)``."""
    marks = []
    for _ in range(_randint(g, 1, max_marks, g.device) if max_marks > 1 else max_marks):
        ink = inks[_randint(g, 0, len(inks) - 1, g.device)]
        left = _randint(g, 10, w - ink.shape[1] - 10, g.device)
        marks.append((ink, left, _randint(g, 10, h - ink.shape[0] - 10, g.device)))
    return marks


def characters_at(x: torch.Tensor, words: list[tuple[str, int, int, float, tuple[int, int, int]]]) -> torch.Tensor:
    """``x`` (``(C, H, W)`` uint8) with each ``(text, left, baseline, scale, rgb)`` written by OpenCV's
    ``putText`` (Hershey duplex, thickness 1, anti-aliased), on the CPU: the one overlay rasterized by a library,
    as JPEG is (Hershey stroke fonts and OpenCV's anti-aliasing have no torch counterpart worth re-deriving)."""
    import cv2

    image = np.ascontiguousarray(x.permute(1, 2, 0).cpu().numpy())
    for text, left, baseline, scale, color in words:
        image = cv2.putText(image, text, (left, baseline), cv2.FONT_HERSHEY_DUPLEX, scale, color, 1, cv2.LINE_AA)
    return torch.from_numpy(image).permute(2, 0, 1).to(x.device)


def characters(x: torch.Tensor, params: tuple[int, int, float], generators=None) -> torch.Tensor:
    """The package's draws per image: ``randint(1, max_words)`` words, each of ``randint(3, max_letters)`` random
    lowercase letters at font scale ``randint(14, int(100 max_scale)) / 100``, left edge ``randint(10, size - 8
    letters)``, baseline ``randint(10, size - 10)`` and an RGB colour of three ``randint(0, 255)``."""
    h, w = x.shape[-2:]
    gs = _generators(x, generators)
    return torch.stack([characters_at(image, draw_words(g, params, h, w)) for image, g in zip(x, gs, strict=True)])


def draw_words(g: torch.Generator, params: tuple[int, int, float], h: int, w: int) -> list:
    """One image's words ``(text, left, baseline, scale, rgb)`` for ``(max_words, max_letters, max_scale)``."""
    max_words, max_letters, max_scale = params
    words = []
    for _ in range(_randint(g, 1, max_words, g.device)):
        n = _randint(g, 3, max_letters, g.device)
        scale = _randint(g, 14, int(max_scale * 100), g.device) / 100.0
        text = "".join(chr(ord("a") + _randint(g, 0, 25, g.device)) for _ in range(n))
        left, baseline = _randint(g, 10, w - 8 * n, g.device), _randint(g, 10, h - 10, g.device)
        words.append((text, left, baseline, scale, tuple(_randint(g, 0, 255, g.device) for _ in range(3))))
    return words


def _generators(x: torch.Tensor, generators) -> list:
    if generators is None or len(generators) != len(x):
        raise ValueError("random overlays draw per image: they need one torch.Generator per image")
    return list(generators)


# families that need an optional package, with what to install (checked by ``unavailable``)
UNAVAILABLE = {
    "stain_deposit": ("medmnistc", "pip install --no-deps medmnistc==0.1.0 (its bundled ink masks)"),
    "characters": ("cv2", "pip install opencv-python-headless (OpenCV's Hershey text)"),
}


def unavailable(preset: str) -> dict[str, str]:
    """The families of ``preset`` that cannot run in this environment, each with what to install."""
    import importlib.util

    return {
        name: how
        for name, (module, how) in UNAVAILABLE.items()
        if name in PRESETS.get(preset, {}) and importlib.util.find_spec(module) is None
    }


FAMILIES: dict[str, Callable] = {
    "brightness_up": brightness,
    "brightness_down": brightness,
    "contrast_up": contrast,
    "contrast_down": contrast,
    "gamma_corr_up": gamma,
    "gamma_corr_down": gamma,
    "saturate": saturate,
    "pixelate": pixelate,
    "jpeg_compression": jpeg_compression,
    "gaussian_blur": gaussian_blur,
    "defocus_blur": defocus_blur,
    "motion_blur": motion_blur,
    "gaussian_noise": gaussian_noise,
    "speckle_noise": speckle_noise,
    "impulse_noise": impulse_noise,
    "shot_noise": shot_noise,
    "zoom_blur": zoom_blur,
    "black_corner": black_corner,
    "bubble": bubble,
    "stain_deposit": stain_deposit,
    "characters": characters,
}
RANDOM = (
    "gaussian_noise",
    "speckle_noise",
    "impulse_noise",
    "shot_noise",
    "motion_blur",
    "bubble",
    "stain_deposit",
    "characters",
)


def row_seed(seed: int, name: str, severity: int, row: int) -> int:
    """A 63-bit seed for one row's noise: independent of batching, different per corruption and severity."""
    digest = hashlib.sha256(f"{seed}|{name}|{severity}|{row}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def to_corruption_canvas(images: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """``(N, C, H, W)`` uint8 -> ``(N, 3, 224, 224)`` uint8 (bilinear resize when needed, gray expanded), and
    whether the input was grayscale."""
    if images.dtype != torch.uint8:
        raise ValueError(f"corruptions work on uint8 images, got {images.dtype}")
    gray = images.shape[1] == 1
    x = images.expand(-1, 3, -1, -1) if gray else images
    if tuple(x.shape[-2:]) != (SIZE, SIZE):
        resized = F.interpolate(x.float(), size=(SIZE, SIZE), mode="bilinear", align_corners=False, antialias=True)
        x = torch.round(resized).clamp(0, 255).to(torch.uint8)
    return x.contiguous(), gray


def corrupt(images: torch.Tensor, name: str, severity: int, preset: str, rows=None, seed: int = 0) -> torch.Tensor:
    """``images`` (uint8 ``(N, C, H, W)``) under ``preset``'s ``name`` at ``severity`` (1-5; 0 = none), on their
    device, at 224 x 224; ``rows`` (the images' row numbers in their split) seed the noise."""
    x, gray = to_corruption_canvas(images)
    if severity != 0:
        if preset not in PRESETS:
            raise ValueError(f"unknown corruption preset {preset!r}; choose from {sorted(PRESETS)}")
        if name not in PRESETS[preset]:
            raise ValueError(f"{preset} has no corruption {name!r}; it has {sorted(PRESETS[preset])}")
        if severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES} (0 for none), got {severity!r}")
        parameter = PRESETS[preset][name][severity - 1]
        generators = None
        if name in RANDOM:
            rows = range(len(x)) if rows is None else rows
            generators = [torch.Generator(x.device).manual_seed(row_seed(seed, name, severity, r)) for r in rows]
        if name == "stain_deposit":  # the package picks the ink size from the severity itself
            x = stain_deposit(x, parameter, generators=generators, severity=severity)
        else:
            x = FAMILIES[name](x, parameter, generators=generators)
    if gray:
        return _luma(x).to(torch.uint8)[:, None]
    return x
