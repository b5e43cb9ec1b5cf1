"""Bounded-memory row access to arrays inside a ``.npz`` file.

``np.load(..., mmap_mode="r")`` silently ignores ``mmap_mode`` for ``.npz`` and reads a whole member into RAM
(16 GB for PathMNIST at 224 px). Instead:

- a member stored uncompressed (``np.savez``) is read in place with positioned reads at its byte offset;
- a compressed member (``np.savez_compressed``) is streamed once, chunk by chunk, into a plain ``.npy`` file
  in the cache directory (atomic rename), then read the same way.

Either way only the rows asked for are ever in memory.
"""

from __future__ import annotations

import hashlib
import os
import struct
import zipfile
from pathlib import Path

import numpy as np

from ..atomic import atomic_write
from ..errors import EncoderZooError

_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # zip local file header, 30 bytes
_STREAM_CHUNK = 64 << 20


class NpzFormatError(EncoderZooError):
    """An ``.npz`` file is truncated, corrupt, a git-LFS pointer, or lacks a required array."""


class RowFile:
    """Positioned reads of whole rows from a C-ordered array stored at ``offset`` in ``path``."""

    def __init__(self, path: Path, offset: int, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.path, self.offset, self.shape, self.dtype = path, offset, shape, np.dtype(dtype)
        self.row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def read(self, start: int, stop: int) -> np.ndarray:
        start, stop = max(0, start), min(stop, self.shape[0])
        out = np.empty((max(0, stop - start), *self.shape[1:]), dtype=self.dtype)
        if out.size:
            with open(self.path, "rb", buffering=0) as fh:
                view = memoryview(out.reshape(-1).view(np.uint8))
                got = os.preadv(fh.fileno(), [view], self.offset + start * self.row_bytes)
            if got != out.nbytes:
                raise NpzFormatError(f"{self.path}: file ends early (truncated?) reading rows {start}:{stop}")
        return out


def _npy_header(fh) -> tuple[tuple[int, ...], np.dtype, bool]:
    major, _ = np.lib.format.read_magic(fh)
    reader = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = reader(fh)
    return shape, dtype, fortran


def open_npz_members(path: Path, cache_dir: Path) -> dict[str, RowFile]:
    """One ``RowFile`` per array in ``path``; compressed members are converted once into ``cache_dir``."""
    with open(path, "rb") as fh:
        if fh.read(7) == b"version":
            raise NpzFormatError(f"{path} is a git-LFS pointer, not data: run `git lfs pull` where you cloned it")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise NpzFormatError(f"{path} is not a readable .npz (truncated or corrupt zip): {err}") from err
    members: dict[str, RowFile] = {}
    with archive:
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                continue
            key = info.filename[:-4]
            if info.compress_type == zipfile.ZIP_STORED:
                members[key] = _stored_member(path, info)
            else:
                members[key] = _converted_member(path, archive, info, cache_dir)
    return members


def _stored_member(path: Path, info: zipfile.ZipInfo) -> RowFile:
    with open(path, "rb") as fh:
        fh.seek(info.header_offset)
        header = fh.read(_LOCAL_HEADER.size)
        if len(header) < _LOCAL_HEADER.size or header[:4] != b"PK\x03\x04":
            raise NpzFormatError(f"{path}: member {info.filename} has a damaged zip header")
        fields = _LOCAL_HEADER.unpack(header)
        name_len, extra_len = fields[-2], fields[-1]
        fh.seek(info.header_offset + _LOCAL_HEADER.size + name_len + extra_len)
        shape, dtype, fortran = _npy_header(fh)
        data_offset = fh.tell()
    _check_layout(path, info.filename, shape, dtype, fortran)
    expected_end = data_offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if expected_end > path.stat().st_size:
        raise NpzFormatError(f"{path} is truncated: {info.filename} needs {expected_end} bytes, file has fewer")
    return RowFile(path, data_offset, tuple(shape), dtype)


def _converted_member(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo, cache_dir: Path) -> RowFile:
    stat = path.stat()  # ctime and inode: a rewrite with size and mtime restored is still a new file
    identity = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{stat.st_ctime_ns}|{stat.st_ino}|{info.CRC}"
    tag = hashlib.sha256(identity.encode()).hexdigest()[:16]
    target = cache_dir / f"{path.stem}-{tag}-{info.filename}"
    if not target.is_file():

        def stream(tmp: Path) -> None:
            with archive.open(info) as src, open(tmp, "wb") as dst:
                shape, dtype, fortran = _npy_header(src)
                _check_layout(path, info.filename, shape, dtype, fortran)
                np.lib.format.write_array_header_1_0(dst, {"descr": dtype.str, "fortran_order": False, "shape": shape})
                while block := src.read(_STREAM_CHUNK):
                    dst.write(block)

        try:
            atomic_write(target, stream)
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as err:
            raise NpzFormatError(f"{path}: member {info.filename} cannot be decompressed (corrupt?): {err}") from err
    with open(target, "rb") as fh:
        shape, dtype, _ = _npy_header(fh)
        offset = fh.tell()
    return RowFile(target, offset, tuple(shape), dtype)


def _check_layout(path: Path, member: str, shape, dtype: np.dtype, fortran: bool) -> None:
    if fortran and len(shape) > 1:
        raise NpzFormatError(f"{path}: {member} is stored in Fortran order; re-save it with np.ascontiguousarray")
    if dtype.hasobject:
        raise NpzFormatError(f"{path}: {member} holds Python objects; refusing to unpickle")
