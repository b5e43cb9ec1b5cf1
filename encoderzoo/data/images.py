"""Decoding one image file into a numpy array: PNG/JPEG (8- and 16-bit, gray or RGB) and DICOM.

Arrays come back as ``(H, W)`` for grayscale or ``(H, W, 3)`` for colour, dtype uint8 or uint16. A file that
cannot be decoded raises ``CorruptImageError`` naming it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import EncoderZooError

DICOM_SUFFIXES = (".dcm", ".dicom")


class CorruptImageError(EncoderZooError):
    """An image file is missing, truncated or not an image."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"cannot read image {path}: {reason}")
        self.path = str(path)


def read_image(path: str | Path) -> np.ndarray:
    """Decode ``path`` by its suffix: DICOM for ``.dcm``/``.dicom``, Pillow for everything else."""
    path = Path(path)
    if not path.is_file():
        raise CorruptImageError(path, "no such file")
    if path.suffix.lower() in DICOM_SUFFIXES:
        return read_dicom(path)
    return read_raster(path)


def read_raster(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()  # decode now, so truncation is caught here
            if img.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
                return np.asarray(img, dtype=np.uint16)
            if img.mode == "I":  # 16-bit PNGs often decode as 32-bit int
                array = np.asarray(img)
                if array.min() < 0 or array.max() > 65535:
                    raise CorruptImageError(
                        path, f"32-bit integer pixels outside 0..65535 ({array.min()}..{array.max()})"
                    )
                return array.astype(np.uint16)
            if img.mode == "L":
                return np.asarray(img, dtype=np.uint8)
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise CorruptImageError(path, f"{type(err).__name__}: {err}") from err


def read_dicom(path: Path) -> np.ndarray:
    """DICOM -> uint16 gray: modality LUT (rescale), VOI window (first window if several), MONOCHROME1 inverted."""
    try:
        import pydicom
        from pydicom.pixels import apply_modality_lut, apply_voi_lut
    except ImportError as err:
        raise EncoderZooError("reading DICOM needs pydicom: pip install 'encoderzoo[dicom]'") from err
    try:
        ds = pydicom.dcmread(path)
        pixels = ds.pixel_array
    except Exception as err:  # pydicom raises many types for damaged files
        raise CorruptImageError(path, f"{type(err).__name__}: {err}") from err
    if pixels.ndim != 2:
        raise CorruptImageError(path, f"expected one 2D grayscale frame, got pixel array of shape {pixels.shape}")
    values = apply_modality_lut(pixels, ds).astype(np.float64)
    if "WindowCenter" in ds or "VOILUTSequence" in ds:
        values = apply_voi_lut(values, ds, index=0).astype(np.float64)
    low, high = float(values.min()), float(values.max())
    scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
    if getattr(ds, "PhotometricInterpretation", "MONOCHROME2") == "MONOCHROME1":
        scaled = 1.0 - scaled
    return np.round(scaled * 65535.0).astype(np.uint16)
