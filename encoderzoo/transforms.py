"""Batched, device-side preprocessing driven by an EncoderSpec.

``Preprocess`` takes a whole batch (uint8 or float, grayscale or RGB) on whatever device it lives on and
returns the normalized ``(N, 3, S, S)`` float tensor the encoder expects. No per-image PIL loop.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import InputError
from .spec import EncoderSpec


def as_nchw(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Batch of images as an ``(N, C, H, W)`` tensor, C in {1, 3}.

    Accepts ``(N, H, W)`` grayscale, ``(N, C, H, W)``, or channels-last ``(N, H, W, C)`` (recognized when the
    last axis is 1 or 3 and the second is not). A single image must be given with its batch axis.
    """
    if isinstance(images, np.ndarray):
        contiguous = np.ascontiguousarray(images)
        images = torch.from_numpy(contiguous if contiguous.flags.writeable else contiguous.copy())
    if not isinstance(images, torch.Tensor):
        raise InputError(f"images must be a torch.Tensor or numpy array, got {type(images).__name__}")
    if images.ndim == 3:
        images = images.unsqueeze(1)
    elif images.ndim == 4 and images.shape[1] not in (1, 3) and images.shape[-1] in (1, 3):
        images = images.permute(0, 3, 1, 2)
    if images.ndim != 4:
        raise InputError(f"expected a batch (N, H, W), (N, C, H, W) or (N, H, W, C); got shape {tuple(images.shape)}")
    if images.shape[1] not in (1, 3) and images.shape[-1] < images.shape[1]:
        raise InputError(
            f"expected 1 (grayscale) or 3 (RGB) channels, got shape {tuple(images.shape)}: neither axis 1 "
            f"({images.shape[1]}) nor the last axis ({images.shape[-1]}, channels-last) holds 1 or 3 channels; "
            "drop alpha channels and convert other modalities to grayscale first"
        )
    if images.shape[1] not in (1, 3):
        raise InputError(
            f"expected 1 (grayscale) or 3 (RGB) channels, got {images.shape[1]} in shape {tuple(images.shape)}; "
            "drop alpha channels and convert other modalities to grayscale first"
        )
    return images


class Preprocess(nn.Module):
    """uint8/float -> float32 in [0, 1] -> 3 channels -> resize per spec -> normalize with the spec's mean/std.

    Float input must already be in [0, 1] (anything outside, NaN included, is an ``InputError``: 0..255 floats
    would otherwise be silently saturated); uint8 is divided by 255; uint16 (16-bit PNG, DICOM) by 65535.
    """

    def __init__(self, spec: EncoderSpec) -> None:
        super().__init__()
        self.size = spec.input_size
        self.interpolation = spec.interpolation
        self.antialias = spec.antialias and spec.interpolation in ("bilinear", "bicubic")
        self.resize_mode = spec.resize_mode
        # checkpoints published for transformers were evaluated with its image processors, the others with
        # torchvision-based transforms (timm, open_clip): they centre-crop odd margins differently
        self.crop_rounding = "floor" if spec.source.format.startswith("hf-") else "round"
        self.register_buffer("mean", torch.tensor(spec.mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(spec.std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def extra_repr(self) -> str:
        return (
            f"size={self.size}, mode={self.resize_mode}, interpolation={self.interpolation}, antialias={self.antialias}"
        )

    def forward(self, images: torch.Tensor | np.ndarray, resize: bool = True) -> torch.Tensor:
        """Preprocessed ``(N, 3, S, S)``; ``resize=False`` keeps each image's own size (MedMNIST+ padding)."""
        x = as_nchw(images).to(self.mean.device)
        x = self._to_unit_float(x)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if resize:
            x = self._resize(x)
        return (x - self.mean) / self.std

    @staticmethod
    def _to_unit_float(x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            return x.float().div_(255.0)
        if x.dtype == torch.uint16:
            return x.to(torch.float32).div_(65535.0)
        if x.is_floating_point():
            x = x.float()
            low, high = torch.aminmax(x) if x.numel() else (x.new_zeros(()), x.new_zeros(()))
            if not (0.0 <= float(low) and float(high) <= 1.0):  # also False for NaN
                hint = "divide by 255 (x / 255)" if float(high) <= 255.0 and float(low) >= 0.0 else "rescale them"
                raise InputError(
                    f"float images must be in [0, 1], got values in [{float(low):.4g}, {float(high):.4g}]: "
                    f"{hint}, or pass uint8 / uint16 arrays as they are (clamp(0, 1) after your own resampling)"
                )
            return x
        raise InputError(f"unsupported image dtype {x.dtype}: give uint8, uint16 or float in [0, 1]")

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        target = shortest_edge_size(h, w, self.size) if self.resize_mode == "shortest_crop" else (self.size, self.size)
        if (h, w) != target:
            align = False if self.interpolation in ("bilinear", "bicubic") else None
            x = F.interpolate(x, size=target, mode=self.interpolation, align_corners=align, antialias=self.antialias)
        if self.resize_mode == "shortest_crop":
            top = centre_crop_offset(x.shape[-2], self.size, self.crop_rounding)
            left = centre_crop_offset(x.shape[-1], self.size, self.crop_rounding)
            x = x[..., top : top + self.size, left : left + self.size]
        if self.interpolation == "bicubic":
            x = x.clamp(0.0, 1.0)
        return x


def shortest_edge_size(height: int, width: int, size: int) -> tuple[int, int]:
    """Size after resizing the shorter edge to ``size``, keeping the aspect ratio.

    The longer edge is ``int(size * long / short)``, truncated, not rounded: the rule of torchvision's
    ``Resize(int)``, which timm's and open_clip's eval transforms and Hugging Face's image processors
    (``shortest_edge``) all apply. Rounding instead shifts every column by up to half a pixel on non-square
    images (measured: mean 2/255, max 34/255 on scikit-image's 300x451 ``chelsea`` at 518 px).
    """
    if height <= width:
        return size, int(size * width / height)
    return int(size * height / width), size


def centre_crop_offset(length: int, size: int, rounding: str = "round") -> int:
    """Start of a centred ``size`` window in ``length`` when ``length - size`` is odd, as upstream does it.

    ``round``: ``int(round((length - size) / 2))`` (halves to even), torchvision's ``center_crop``, which timm's
    and open_clip's eval transforms use. ``floor``: ``(length - size) // 2``, Hugging Face's image processors
    (``BitImageProcessor`` for RAD-DINO). The two differ by one pixel in half of the odd cases.
    """
    if rounding == "floor":
        return (length - size) // 2
    return int(round((length - size) / 2.0))


def pad_to_canvas(images: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-pad ``(N, C, H, W)`` images into the centre of a ``size x size`` canvas (the MedMNIST+ protocol).

    The engine pads images already normalized with the encoder's mean and std, as the MedMNIST+ reference code
    does (``ToTensor, Normalize, Pad(fill=0)``), so the border is the mean colour; the odd pixel of an odd margin
    goes right and bottom.
    """
    h, w = images.shape[-2:]
    if h > size or w > size:
        raise InputError(f"cannot pad {h}x{w} images into a {size}x{size} canvas; use fit='resize'")
    top, left = (size - h) // 2, (size - w) // 2
    return F.pad(images, (left, size - w - left, top, size - h - top), value=0)
