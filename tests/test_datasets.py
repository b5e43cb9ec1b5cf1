"""Every dataset kind loads with the right counts, splits and labels; every bad input fails clearly."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from encoderzoo.data import (
    ChecksumError,
    CorruptImageError,
    DatasetNotFoundError,
    NpzFormatError,
    open_dataset,
    read_image,
)
from encoderzoo.data.npz import file_md5

from .datasets_fixtures import write_chexpert, write_dicom, write_nih, write_npz, write_png

# --- real data from ../shared/data ---------------------------------------------------------------


def test_kermany_folder_counts_and_labels(shared_data):
    ds = open_dataset(f"folder:{shared_data / 'cxr-pneumonia-kermany'}")
    assert {s: ds.num_samples(s) for s in ds.splits} == {"train": 4695, "val": 521, "test": 624}
    assert ds.task == "binary" and ds.label_names == ["NORMAL", "PNEUMONIA"]
    test_ids, test_labels = ds.sample_ids("test"), ds.labels("test")
    for sample_id, label in zip(test_ids[:50], test_labels[:50], strict=True):
        assert sample_id.split("/")[1] == ds.label_names[label]  # folder name agrees with the CSV label
    batch = ds.read("test", 0, 4)
    assert batch.shape == (4, 224, 224, 3) and batch.dtype == np.uint8


def test_pbcblood_npz(shared_data):
    ds = open_dataset(f"npz:{shared_data / 'medmnist-format' / 'pbcblood_28.npz'}")
    assert {s: ds.num_samples(s) for s in ds.splits} == {"train": 11964, "val": 1709, "test": 3419}
    assert ds.task == "multi-class" and len(ds.label_names) == 8
    assert ds.labels("train").shape == (11964,) and ds.labels("train").dtype == np.int64
    assert ds.read("val", 100, 103).shape == (3, 28, 28, 3)


def test_flat_labels_are_accepted(shared_data):
    ds = open_dataset(f"npz:{shared_data / 'medmnist-format' / 'breastmnist_resaved.npz'}")
    assert {s: ds.num_samples(s) for s in ds.splits} == {"train": 546, "val": 78, "test": 156}
    assert ds.labels("test").shape == (156,) and ds.task == "binary"


def test_medmnist_md5_mismatch_is_refused_then_accepted_explicitly(shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDMNIST_ROOT", str(tmp_path))
    shutil.copy(shared_data / "medmnist-format" / "pneumoniamnist_subset.npz", tmp_path / "pneumoniamnist.npz")
    with pytest.raises(ChecksumError, match=r"official pneumoniamnist.npz has 28209eda.*--accept-unofficial"):
        open_dataset("medmnist:pneumoniamnist")
    ds = open_dataset("medmnist:pneumoniamnist?accept_unofficial=1")
    assert ds.num_samples("train") == 3882 and ds.label_names == ["normal", "pneumonia"]
    assert ds.describe()["medmnist"]["official"] is False and ds.describe()["medmnist"]["licence"] == "CC BY 4.0"


# --- MedMNIST by name, made by the tests -----------------------------------------------------------


def test_medmnist_missing_offline_says_where_to_put_it(tmp_path, monkeypatch):
    from medmnist import INFO

    monkeypatch.setenv("MEDMNIST_ROOT", str(tmp_path))
    official_md5 = INFO["bloodmnist"]["MD5_64"]
    with pytest.raises(DatasetNotFoundError, match=rf"bloodmnist_64.npz not found.*md5 {official_md5}"):
        open_dataset("medmnist:bloodmnist@64")


def test_medmnist_official_md5_and_multilabel_chestmnist(tmp_path, monkeypatch):
    """A file whose md5 we register as official loads with INFO's task and names (ChestMNIST: 14 labels)."""
    monkeypatch.setenv("MEDMNIST_ROOT", str(tmp_path))
    path = write_npz(tmp_path / "chestmnist.npz", multilabel=14)
    from medmnist import INFO

    monkeypatch.setitem(INFO["chestmnist"], "MD5", file_md5(path))
    ds = open_dataset("medmnist:chestmnist")
    assert ds.task == "multi-label" and ds.labels("train").shape == (12, 14) and ds.label_names[0] == "atelectasis"
    assert ds.describe()["medmnist"]["official"] is True


def test_md5_memo_is_not_fooled_by_a_rewrite_with_size_and_mtime_restored(tmp_path):
    """The md5 memo (which decides "official MedMNIST file") must rehash a file rewritten in place."""
    import hashlib
    import os

    path = write_npz(tmp_path / "x.npz", seed=0)
    before = path.stat()
    assert file_md5(path) == hashlib.md5(path.read_bytes()).hexdigest()
    write_npz(path, seed=1)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert file_md5(path) == hashlib.md5(path.read_bytes()).hexdigest()


def test_unknown_medmnist_name_and_size(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="unknown 2D MedMNIST set 'bloodmnst'"):
        open_dataset("medmnist:bloodmnst")
    with pytest.raises(DatasetNotFoundError, match="sizes are"):
        open_dataset("medmnist:bloodmnist@100")


@pytest.mark.parametrize("compressed", [False, True])
def test_npz_stored_and_compressed_read_the_same(tmp_path, compressed):
    path = write_npz(tmp_path / "x.npz", compressed=compressed, shape=(30, 20, 3))
    ds = open_dataset(f"npz:{path}")
    with np.load(path) as ref:
        assert np.array_equal(ds.read("train", 3, 9), ref["train_images"][3:9])
        assert np.array_equal(ds.labels("test"), ref["test_labels"][:, 0])


def test_truncated_npz(tmp_path):
    path = write_npz(tmp_path / "x.npz", shape=(64, 64))
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(NpzFormatError, match="truncated or corrupt"):
        open_dataset(f"npz:{path}")


def test_lfs_pointer_npz(tmp_path):
    path = tmp_path / "x.npz"
    path.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n")
    with pytest.raises(NpzFormatError, match="git-LFS pointer"):
        open_dataset(f"npz:{path}")


def test_npz_without_medmnist_layout(tmp_path):
    path = tmp_path / "x.npz"
    np.savez(path, images=np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(NpzFormatError, match="MedMNIST layout"):
        open_dataset(f"npz:{path}")


def test_bad_spec_strings(tmp_path):
    with pytest.raises(ValueError, match="must start with one of"):
        open_dataset("imagenet:/data")
    with pytest.raises(ValueError, match="unknown option"):
        open_dataset(f"npz:{write_npz(tmp_path / 'x.npz')}?colour=1")


# --- folder / NIH / CheXpert layouts made by the tests --------------------------------------------


def test_folder_multilabel_with_uncertain(tmp_path):
    rng = np.random.default_rng(0)
    lines = ["path,split,effusion,edema"]
    for i, (split, e, d) in enumerate([("train", "1", "0"), ("train", "", "-1"), ("test", "0", "1")]):
        write_png(tmp_path / f"img{i}.png", rng.integers(0, 256, (20, 20), np.uint8))
        lines.append(f"img{i}.png,{split},{e},{d}")
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    ds = open_dataset(f"folder:{tmp_path}")
    assert ds.task == "multi-label" and ds.label_names == ["effusion", "edema"]
    train = ds.labels("train")
    assert train[0].tolist() == [1.0, 0.0] and train[1, 0] == 0.0 and np.isnan(train[1, 1])


def test_folder_string_labels_and_mixed_sizes(tmp_path):
    rng = np.random.default_rng(0)
    write_png(tmp_path / "a.png", rng.integers(0, 256, (20, 30, 3), np.uint8))
    write_png(tmp_path / "b.png", rng.integers(0, 256, (25, 25), np.uint8))
    (tmp_path / "labels.csv").write_text("path,split,label\na.png,train,melanoma\nb.png,train,nevus\n")
    ds = open_dataset(f"folder:{tmp_path}")
    assert ds.label_names == ["melanoma", "nevus"] and ds.labels("train").tolist() == [0, 1]
    images = ds.read("train", 0, 2)
    assert isinstance(images, list) and images[0].shape == (20, 30, 3) and images[1].shape == (25, 25)


def test_corrupt_image_is_named_or_skipped(tmp_path):
    rng = np.random.default_rng(0)
    write_png(tmp_path / "good.png", rng.integers(0, 256, (20, 20), np.uint8))
    good = (tmp_path / "good.png").read_bytes()
    (tmp_path / "bad.png").write_bytes(good[: len(good) // 2])
    (tmp_path / "labels.csv").write_text("path,split,label\ngood.png,train,0\nbad.png,train,1\n")
    with pytest.raises(CorruptImageError, match="bad.png"):
        open_dataset(f"folder:{tmp_path}").read("train", 0, 2)
    images = open_dataset(f"folder:{tmp_path}?skip_corrupt=1").read("train", 0, 2)
    assert images[0] is not None and images[1] is None


def test_nih_layout(tmp_path):
    ds = open_dataset(f"nih:{write_nih(tmp_path)}")
    counts = {s: ds.num_samples(s) for s in ds.splits}
    assert counts["test"] == 4 and counts["train"] + counts["val"] == 12 and counts["val"] > 0
    assert ds.task == "multi-label" and len(ds.label_names) == 14
    train_patients = {i.split("_")[0] for i in ds.sample_ids("train")}
    val_patients = {i.split("_")[0] for i in ds.sample_ids("val")}
    assert not train_patients & val_patients  # split by patient, never by image
    labels = dict(zip(ds.sample_ids("test"), ds.labels("test"), strict=True))
    row = labels["00000007_000.png"]  # patient 7, k=0 -> findings[7 % 5] = "Atelectasis|Effusion"
    assert {ds.label_names[i] for i in np.flatnonzero(row)} == {"Atelectasis", "Effusion"}


def test_nih_no_finding_is_all_zeros(tmp_path):
    ds = open_dataset(f"nih:{write_nih(tmp_path)}")
    ids = ds.sample_ids("train") + ds.sample_ids("val")
    labels = np.concatenate([ds.labels("train"), ds.labels("val")])
    assert labels[ids.index("00000000_000.png")].sum() == 0  # patient 0, k=0 -> "No Finding"


@pytest.mark.parametrize("policy, expected", [("ignore", None), ("zeros", 0.0), ("ones", 1.0)])
def test_chexpert_uncertain_policy_and_frontal_filter(tmp_path, policy, expected):
    root = write_chexpert(tmp_path)
    ds = open_dataset(f"chexpert:{root}?uncertain={policy}")
    assert ds.num_samples("test") == 2  # valid.csv, frontal only
    assert ds.num_samples("train") + ds.num_samples("val") == 10
    assert all("frontal" in i for i in ds.sample_ids("train"))
    edema = ds.labels("train")[:, ds.label_names.index("Edema")]
    assert np.isnan(edema).all() if expected is None else (edema == expected).all()
    assert ds.describe()["uncertain"] == policy
    with_lateral = open_dataset(f"chexpert:{root}?frontal=0")
    assert with_lateral.num_samples("test") == 4
    assert ds.read("test", 0, 2).shape == (2, 36, 30)


def test_chexpert_bad_policy(tmp_path):
    with pytest.raises(ValueError, match="uncertain must be"):
        open_dataset(f"chexpert:{write_chexpert(tmp_path)}?uncertain=maybe")


# --- image decoding --------------------------------------------------------------------------------


def test_16bit_png(tmp_path):
    pixels = (np.arange(40 * 30, dtype=np.uint16).reshape(40, 30) * 50).astype(np.uint16)
    path = write_png(tmp_path / "x16.png", pixels)
    decoded = read_image(path)
    assert decoded.dtype == np.uint16 and np.array_equal(decoded, pixels)


def test_dicom_windowing_and_monochrome1(tmp_path):
    pytest.importorskip("pydicom")
    pixels = np.tile(np.arange(0, 4000, 100, dtype=np.uint16), (8, 1))  # 0..3900 along x
    mono2 = read_image(write_dicom(tmp_path / "a.dcm", pixels, window=(1000, 1000)))
    assert mono2.dtype == np.uint16
    assert mono2[0, 0] == 0 and mono2[0, -1] == 65535  # clipped by the 500..1500 window
    assert mono2[0, 10] > 0 and mono2[0, 10] < 65535  # 1000 lies inside the window
    mono1 = read_image(write_dicom(tmp_path / "b.dcm", pixels, photometric="MONOCHROME1"))
    assert mono1[0, 0] == 65535 and mono1[0, -1] == 0  # inverted: low values are bright


def test_corrupt_dicom(tmp_path):
    pytest.importorskip("pydicom")
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"DICM" * 10)
    with pytest.raises(CorruptImageError, match="bad.dcm"):
        read_image(bad)
