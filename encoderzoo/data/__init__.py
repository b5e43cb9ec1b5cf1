"""Datasets by spec string, for Python and the CLI.

``open_dataset(spec)`` where ``spec`` is one of

- ``medmnist:NAME[@SIZE]``: a 2D MedMNIST set (28/64/128/224), md5-checked (``?accept_unofficial=1`` to allow
  a re-saved copy);
- ``npz:PATH``: any ``.npz`` in the MedMNIST layout;
- ``folder:DIR``: images + ``DIR/labels.csv`` (``path``, ``split``, ``label`` or one column per label);
- ``nih:DIR[?split_file=PATH]``: NIH ChestX-ray14 (official lists, or a published split such as BenchX's);
- ``chexpert:DIR[?uncertain=ignore|zeros|ones&frontal=1|0]``: CheXpert;
- ``sample:pneumoniamnist``: the 500-image PneumoniaMNIST sample shipped with encoderzoo (offline default);
- chest X-ray benchmarks as distributed (``encoderzoo.data.cxr``): ``mimic-cxr:``, ``rsna-pneumonia:``,
  ``siim-pneumothorax:``, ``vindr-cxr:``, ``covidx:``, ``nlm-tb:``, ``padchest:``, ``object-cxr:``, ``tbx11k:``
  (options ``?seed=``, ``?split_file=``, ``?views=``, ``?uncertain=`` (MIMIC), ``?readers=`` (VinDr)).

``?labels=common`` (any spec; meant for chest X-rays) maps the labels onto one vocabulary
(``encoderzoo.data.vocabulary``): 18 findings, NaN (unknown) where the dataset lacks one; a dataset none of
whose labels is in it is refused.

Folder-like specs accept ``?skip_corrupt=1`` to drop (and count) undecodable images instead of failing.
DICOM files (``.dcm``) are read wherever a table lists them (``pip install 'encoderzoo[dicom]'``).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl

from .base import ImageDataset, Task
from .cxr import LOADERS as CXR_LOADERS
from .images import CorruptImageError, read_image
from .npz import ChecksumError, DatasetNotFoundError, NpzDataset, open_medmnist
from .npz_arrays import NpzFormatError
from .table import TableDataset, open_chexpert, open_folder, open_nih

SCHEMES = ("medmnist", "npz", "folder", "nih", "chexpert", "sample", *CXR_LOADERS)
SAMPLES = {"pneumoniamnist": Path(__file__).resolve().parents[1] / "assets" / "pneumoniamnist_sample.npz"}

__all__ = [
    "ChecksumError",
    "CorruptImageError",
    "DatasetNotFoundError",
    "ImageDataset",
    "NpzDataset",
    "NpzFormatError",
    "TableDataset",
    "Task",
    "open_chexpert",
    "open_dataset",
    "open_folder",
    "open_medmnist",
    "open_nih",
    "read_image",
]


def _flag(options: dict[str, str], key: str, default: bool) -> bool:
    value = options.pop(key, None)
    if value is None:
        return default
    if value.lower() in ("1", "true", "yes"):
        return True
    if value.lower() in ("0", "false", "no"):
        return False
    raise ValueError(f"option {key}={value!r}: use 1 or 0")


def open_dataset(spec: str) -> ImageDataset:
    """Open a dataset from its spec string (see the module docstring for the grammar)."""
    scheme, sep, rest = spec.partition(":")
    if not sep or scheme not in SCHEMES:
        raise ValueError(f"dataset spec {spec!r} must start with one of {', '.join(s + ':' for s in SCHEMES)}")
    target, _, query = rest.partition("?")
    options = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)))
    labels = options.pop("labels", None)
    if labels not in (None, "common", "own"):
        raise ValueError(f"option labels={labels!r}: use common (the shared 18-finding vocabulary) or own")
    if scheme in CXR_LOADERS:
        from .cxr import open_cxr

        dataset = open_cxr(scheme, target, options)
    elif scheme == "medmnist":
        name, _, size = target.partition("@")
        dataset: ImageDataset = open_medmnist(
            name.lower(), int(size or 28), verify_md5=not _flag(options, "accept_unofficial", False)
        )
    elif scheme == "npz":
        dataset = NpzDataset(target)
    elif scheme == "sample":
        if target not in SAMPLES:
            raise ValueError(f"no bundled sample {target!r}; available: {sorted(SAMPLES)}")
        dataset = NpzDataset(
            SAMPLES[target],
            task="binary",
            label_names=["normal", "pneumonia"],
            info={"source": "PneumoniaMNIST sample bundled with encoderzoo", "licence": "CC BY 4.0"},
        )
    elif scheme == "folder":
        dataset = open_folder(target, skip_corrupt=_flag(options, "skip_corrupt", False))
    elif scheme == "nih":
        dataset = open_nih(
            target, skip_corrupt=_flag(options, "skip_corrupt", False), split_file=options.pop("split_file", None)
        )
    else:
        dataset = open_chexpert(
            target,
            uncertain=options.pop("uncertain", "ignore"),  # type: ignore[arg-type]
            frontal_only=_flag(options, "frontal", True),
            skip_corrupt=_flag(options, "skip_corrupt", False),
        )
    if options:
        raise ValueError(f"unknown option(s) {sorted(options)} in dataset spec {spec!r}")
    if labels == "common":
        from .vocabulary import with_common_labels

        dataset = with_common_labels(dataset)
    dataset.spec = spec
    return dataset
