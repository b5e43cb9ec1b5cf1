"""MedMNIST-layout ``.npz`` datasets: ``npz:PATH`` and ``medmnist:NAME[@SIZE]``.

Layout: ``{train,val,test}_images`` as ``(N, H, W)`` or ``(N, H, W, 3)`` uint8 and ``{split}_labels`` as
``(N, 1)``, ``(N,)`` or ``(N, L)`` for multi-label sets such as ChestMNIST.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from ..atomic import atomic_write
from ..download import DownloadError, download, offline_switch
from ..errors import EncoderZooError
from ..paths import cache_root, medmnist_root
from .base import ImageDataset, Task, check_multi_labels, check_single_labels, normalize_labels, task_from_labels
from .npz_arrays import NpzFormatError, open_npz_members

SPLITS = ("train", "val", "test")
MEDMNIST_SIZES = (28, 64, 128, 224)


class DatasetNotFoundError(EncoderZooError):
    """A dataset file is not where it should be and cannot be downloaded."""


class ChecksumError(EncoderZooError):
    """A file's md5 differs from the official one."""


class NpzDataset(ImageDataset):
    """Any ``.npz`` in the MedMNIST layout, read with bounded memory (see ``npz_arrays``)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        spec: str | None = None,
        task: Task | None = None,
        label_names: list[str] | None = None,
        info: dict | None = None,
    ) -> None:
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise DatasetNotFoundError(f"{self.path} does not exist")
        self.spec = spec or f"npz:{self.path}"
        self.members = open_npz_members(self.path, cache_root() / "npz")
        splits = tuple(s for s in SPLITS if f"{s}_images" in self.members)
        if not splits:
            raise NpzFormatError(
                f"{self.path} has no {{train,val,test}}_images arrays (found {sorted(self.members)}); "
                "is it in the MedMNIST layout?"
            )
        for split in splits:
            if f"{split}_labels" not in self.members:
                raise NpzFormatError(f"{self.path} has {split}_images but no {split}_labels")
            n_img, n_lab = len(self.members[f"{split}_images"]), len(self.members[f"{split}_labels"])
            if n_img != n_lab:
                raise NpzFormatError(f"{self.path}: {split} has {n_img} images but {n_lab} labels")
            shape = self.members[f"{split}_images"].shape
            if len(shape) not in (3, 4) or (len(shape) == 4 and shape[-1] not in (1, 3)):
                raise NpzFormatError(f"{self.path}: {split}_images has shape {shape}; expected (N, H, W[, 1|3])")
        self.splits = splits
        raw = {s: self.members[f"{s}_labels"].read(0, len(self.members[f"{s}_labels"])) for s in splits}
        self.task = task or task_from_labels(list(raw.values()))
        for split, y in raw.items():
            check = check_multi_labels if self.task == "multi-label" else check_single_labels
            check(y, f"{self.path} {split}_labels")
        self._labels = {s: normalize_labels(y, self.task) for s, y in raw.items()}
        if label_names is None:
            width = (
                self._labels[splits[0]].shape[1]
                if self.task == "multi-label"
                else (int(max(y.max(initial=0) for y in self._labels.values())) + 1)
            )
            label_names = [str(i) for i in range(width)]
        self.label_names = label_names
        self.info = info or {}

    def num_samples(self, split: str) -> int:
        self.check_split(split)
        return len(self.members[f"{split}_images"])

    def labels(self, split: str) -> np.ndarray:
        self.check_split(split)
        return self._labels[split]

    def sample_ids(self, split: str) -> list[str]:
        return [f"{split}/{i}" for i in range(self.num_samples(split))]

    def read(self, split: str, start: int, stop: int) -> np.ndarray:
        self.check_split(split)
        return self.members[f"{split}_images"].read(start, stop)

    def fingerprint(self, split: str) -> str:
        """The file's identity and change time (``file_identity``), the zip CRC-32 and size of the split's
        images and labels (the archive's own checksum of their bytes, read from its directory: free) and the
        labels. Reading every pixel is not needed: rewriting the file changes its ctime, which no tool can set
        back, and a re-saved array changes its CRC."""
        digest = hashlib.sha256(f"{file_identity(self.path)}|{split}".encode())
        with zipfile.ZipFile(self.path) as archive:
            for member in (f"{split}_images.npy", f"{split}_labels.npy"):
                info = archive.getinfo(member)
                digest.update(f"|{member}:{info.CRC:08x}:{info.file_size}".encode())
        digest.update(np.ascontiguousarray(self.labels(split)).tobytes())
        return digest.hexdigest()

    def describe(self) -> dict:
        return {**super().describe(), "path": str(self.path), **({"medmnist": self.info} if self.info else {})}


def medmnist_filename(name: str, size: int) -> str:
    return f"{name}.npz" if size == 28 else f"{name}_{size}.npz"


def open_medmnist(
    name: str, size: int = 28, *, root: Path | None = None, download: bool = True, verify_md5: bool = True
) -> NpzDataset:
    """A 2D MedMNIST set by name, with names, task, labels and licence from ``medmnist.INFO``.

    The file is looked for in ``root`` (``$MEDMNIST_ROOT`` or ``~/.medmnist``); if absent it is downloaded
    (unless offline) and its md5 checked. A file whose md5 is not the official one is refused unless
    ``verify_md5=False``, which records ``official: false`` in the dataset description.
    """
    from medmnist import INFO

    if name not in INFO or name.endswith("3d"):
        options = ", ".join(k for k in INFO if not k.endswith("3d"))
        raise DatasetNotFoundError(f"unknown 2D MedMNIST set {name!r}; choose from: {options}")
    if size not in MEDMNIST_SIZES:
        raise DatasetNotFoundError(f"MedMNIST sizes are {MEDMNIST_SIZES}, got {size}")
    info = INFO[name]
    suffix = "" if size == 28 else f"_{size}"
    url, md5 = info[f"url{suffix}"], info[f"MD5{suffix}"]
    root = root or medmnist_root()
    path = root / medmnist_filename(name, size)
    if not path.is_file():
        switch = offline_switch() or ("" if download else "download=False")
        if switch:
            raise DatasetNotFoundError(
                f"{path} not found and downloads are off ({switch}). Put the official file there "
                f"(from {url}, md5 {md5}), set MEDMNIST_ROOT to the folder that holds it, or use npz:PATH for a "
                "file in the same layout."
            )
        _download(url, path, md5)
    official = True
    actual = file_md5(path)
    if actual != md5:
        if verify_md5:
            raise ChecksumError(
                f"{path} has md5 {actual}, but the official {medmnist_filename(name, size)} has {md5}. If this is a "
                "re-saved or reduced copy you mean to use, pass verify_md5=False (CLI: --accept-unofficial); "
                "results will then be marked as not on the official file."
            )
        official = False
    task: Task = (
        "multi-label"
        if info["task"].startswith("multi-label")
        else ("binary" if info["task"] == "binary-class" else "multi-class")
    )
    label_names = [info["label"][str(i)] for i in range(len(info["label"]))]
    meta = {"name": name, "size": size, "md5": actual, "official": official, "licence": info["license"], "url": url}
    spec = f"medmnist:{name}" + ("" if size == 28 else f"@{size}")
    return NpzDataset(path, spec=spec, task=task, label_names=label_names, info=meta)


def file_identity(path: Path) -> str:
    """Resolved path, size, mtime, ctime and inode of ``path``: changes whenever the file is rewritten.

    ``touch``/``os.utime`` can restore a file's mtime but not its ctime, which the kernel sets to "now" on every
    write (and on the ``utime`` call itself); a new inode means another file. Copies and ``chmod`` also change
    it, which only costs a recomputation.
    """
    stat = path.stat()
    return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{stat.st_ctime_ns}|{stat.st_ino}"


def file_md5(path: Path) -> str:
    """md5 of ``path``, remembered per ``file_identity`` so 16 GB files are hashed once."""
    memo = cache_root() / "md5.json"
    key = file_identity(path)
    known = json.loads(memo.read_text()) if memo.is_file() else {}
    if key not in known:
        known[key] = _md5(path)
        atomic_write(memo, lambda tmp: tmp.write_text(json.dumps(known)))
    return known[key]


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(16 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(url: str, path: Path, md5: str) -> None:
    """Download, then keep the file only if its md5 is the official one."""
    try:
        download(url, path)
    except DownloadError as err:
        raise DatasetNotFoundError(f"{err}. Download it by hand and put it at {path}.") from err
    digest = _md5(path)
    if digest != md5:
        path.unlink()
        raise ChecksumError(f"downloaded {url} has md5 {digest}, expected {md5}; not keeping it")
