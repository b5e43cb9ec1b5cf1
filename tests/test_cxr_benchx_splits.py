"""``?split_file=`` reading BenchX's published split lists in their real format.

BenchX (github.com/yangzhou12/BenchX, commit b874fa6) commits ``preprocess/datasets/NAME/{train,val,test,train_1,
train_10}.txt``: one name per line, ``\\n``-terminated, no header, no label (labels come from the dataset's own
files). The names, per dataset (first line of each real train.txt in the comment):

- RSNA: the patientId (``80bca6c8-5cdf-4528-85d6-aa6f3336664b``);
- NIH: the Image Index (``00001522_000.png``; MRM's split);
- SIIM: the PNG name of the vbookshelf Kaggle re-release without ``.png`` (``424_train_1_``), mapped to
  ImageIds by that release's ``stage_1_{train,test}_images.csv`` (``new_filename, ImageId, has_pneumo``);
- VinDr-CXR: the image_id (``0c469843f3e05f73485ef54a73967a81``);
- COVIDx: ``split/NAME.png`` (``train/7223b8ad031187d9a142d7f7ca02c9_jumbo.png``), NAME being the official
  file name cut at its first dot, so ``CR.1.2...png`` files all become ``val/CR.png`` (listed once per image);
- Object-CXR: the file stem (``00001``); TBX11K: the file stem (``s0054``).

The replicas below are written in that format by hand; the images come from the loaders' own replicas.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from encoderzoo.data import open_dataset
from encoderzoo.data.cxr.files import LabelFileError

from .cxr_fixtures import (
    _pixels,
    write_csv,
    write_object_cxr,
    write_png,
    write_rsna,
    write_siim,
    write_tbx11k,
    write_vindr,
)
from .datasets_fixtures import write_nih

pydicom = pytest.importorskip("pydicom")


def write_benchx(folder: Path, train: list[str], val: list[str], test: list[str]) -> Path:
    """BenchX's files for one dataset, as its ``save_anno`` writes them, with the 1% / 10% train subsets and the
    preprocessing script beside them (as in a checkout's ``preprocess/datasets/NAME/``)."""
    folder.mkdir(parents=True, exist_ok=True)
    lists = {"train": train, "val": val, "test": test, "train_1": train[:1], "train_10": train[:2]}
    for name, names in lists.items():
        (folder / f"{name}.txt").write_text("".join(f"{x}\n" for x in names))
    (folder / "preprocess_dataset.py").write_text("# BenchX's script ships here too\n")
    return folder


def _splits(ds) -> dict[str, set[str]]:
    return {s: set(ds.sample_ids(s)) for s in ds.splits}


# --- RSNA: patientIds -------------------------------------------------------------------------------------------


def test_rsna_benchx_split_is_followed_and_labels_stay_the_datasets(tmp_path):
    root = write_rsna(tmp_path / "rsna")  # patients rsna000..rsna039; every 4th positive
    ids = [f"{i:08x}-abab-rsna{i:03d}" for i in range(40)]
    folder = write_benchx(tmp_path / "RSNA", ids[5:25], ids[25:31], ids[31:37])
    ds = open_dataset(f"rsna-pneumonia:{root}?split_file={folder}")
    assert _splits(ds) == {"train": set(ids[5:25]), "val": set(ids[25:31]), "test": set(ids[31:37])}
    assert ds.extra["unlisted_images_dropped"] == 8  # 0-4 and 37-39; train_1 / train_10 add nothing
    for split in ds.splits:
        for sample_id, y in zip(ds.sample_ids(split), ds.labels(split), strict=True):
            assert y == (int(sample_id[-3:]) % 4 == 0)  # Target from stage_2_train_labels.csv


def test_rsna_benchx_split_naming_an_unknown_patient_is_refused(tmp_path):
    root = write_rsna(tmp_path / "rsna", n=8)
    ids = [f"{i:08x}-abab-rsna{i:03d}" for i in range(8)]
    folder = write_benchx(tmp_path / "RSNA", ids[:4], ids[4:6], [ids[6], "37541ec6-57df-4f39-8318-e18663fafd0d"])
    with pytest.raises(LabelFileError, match=r"not in the dataset.*1 entries: 37541ec6-57df-4f39-8318-e18663fafd0d$"):
        open_dataset(f"rsna-pneumonia:{root}?split_file={folder}")


# --- SIIM: vbookshelf PNG names mapped through stage_1_{train,test}_images.csv -----------------------------------


def _siim_ids() -> list[str]:
    return [f"1.2.276.0.7230010.3.1.4.8323329.{1000 + i}.1517875{i:03d}.{i}" for i in range(24)]


def _write_png_names(folder: Path, flip: int | None = None) -> dict[str, str]:
    """The re-release's CSVs: image i of the replica is PNG ``{(7 * i) % 24}_train_{label}_`` (a shuffled index),
    plus two stage-1 test images the replica lacks. ``flip``: that image's has_pneumo is wrong."""
    names, rows = {}, []
    for i, image_id in enumerate(_siim_ids()):
        label = int(i % 3 == 0)
        names[image_id] = f"{(7 * i) % 24}_train_{label}_"
        rows.append([f"{names[image_id]}.png", image_id, 1 - label if i == flip else label])
    write_csv(folder / "stage_1_train_images.csv", ["new_filename", "ImageId", "has_pneumo"], rows)
    test_rows = [["0_test_1_.png", "1.2.276.0.7230010.3.1.4.8323329.9000.1.1", 1], ["1_test_0_.png", "1.2.9.9", 0]]
    write_csv(folder / "stage_1_test_images.csv", ["new_filename", "ImageId", "has_pneumo"], test_rows)
    return names


@pytest.mark.parametrize("names_beside", ["split files", "dataset"])
def test_siim_benchx_split_maps_png_names_to_image_ids(tmp_path, names_beside):
    root = write_siim(tmp_path / "siim")
    ids = _siim_ids()
    folder = tmp_path / "SIIM"
    names = _write_png_names(folder if names_beside == "split files" else root)
    write_benchx(folder, [names[i] for i in ids[:14]], [names[i] for i in ids[14:19]], [names[i] for i in ids[19:]])
    ds = open_dataset(f"siim-pneumothorax:{root}?split_file={folder}")
    assert _splits(ds) == {"train": set(ids[:14]), "val": set(ids[14:19]), "test": set(ids[19:])}
    assert ds.extra["unlisted_images_dropped"] == 0
    assert ds.extra["patients_in_two_splits"] == 1  # BenchX splits images, not patients: images 18 | 19
    labels = {i: y for s in ds.splits for i, y in zip(ds.sample_ids(s), ds.labels(s), strict=True)}
    assert labels == {image_id: int(names[image_id].endswith("_1_")) for image_id in ids}
    assert ds.extra["split_file_png_names"][0].endswith("stage_1_train_images.csv")


def test_siim_benchx_split_without_the_name_map_or_with_stage1_test_images_is_refused(tmp_path):
    root = write_siim(tmp_path / "siim")
    ids = _siim_ids()
    names = {image_id: f"{(7 * i) % 24}_train_{int(i % 3 == 0)}_" for i, image_id in enumerate(ids)}
    folder = write_benchx(tmp_path / "SIIM", [names[i] for i in ids[:20]], [names[i] for i in ids[20:]], [])
    with pytest.raises(LabelFileError, match=r"24 entries: 0_train_1_, .*stage_1_train_images\.csv"):
        open_dataset(f"siim-pneumothorax:{root}?split_file={folder}")
    _write_png_names(folder)
    (folder / "test.txt").write_text("0_test_1_\n1_test_0_\n")  # BenchX's test.txt: stage-1 test images
    with pytest.raises(LabelFileError, match=r"2 entries: 0_test_1_, 1_test_0_\. .*stage-1 test images"):
        open_dataset(f"siim-pneumothorax:{root}?split_file={folder}")


def test_siim_png_names_whose_has_pneumo_disagrees_with_the_masks_are_refused(tmp_path):
    root = write_siim(tmp_path / "siim")
    folder = tmp_path / "SIIM"
    names = _write_png_names(folder, flip=3)
    write_benchx(folder, list(names.values()), [], [])
    with pytest.raises(LabelFileError, match=r"has_pneumo disagrees with train-rle.csv for \['21_train_1_.png"):
        open_dataset(f"siim-pneumothorax:{root}?split_file={folder}")


# --- COVIDx: split/NAME.png, NAME cut at the first dot; BenchX drops each official list's first line -------------


def _write_covidx(root: Path) -> None:
    files = {
        "train": ["a1.png", "CR.1.2.840.113564.10.png", "CR.1.2.840.113564.11.png", "b2.jpg", "c3.jpeg", "d4.png"],
        "val": ["e5.png", "f6.jpg", "g7.png"],
        "test": ["h8.png", "i9.png", "j10.png"],
    }
    for split, names in files.items():
        lines = []
        for k, name in enumerate(names):
            write_png(root / split / name, _pixels())
            lines.append(f"p{split}{k} {name} {'positive' if k % 2 else 'negative'} bimcv\n")
        (root / f"{split}.txt").write_text("".join(lines))


def test_covidx_benchx_names_cut_at_the_first_dot_and_dropped_first_lines(tmp_path):
    root = tmp_path / "covidx"
    _write_covidx(root)
    # what BenchX's preprocess_covidx.py writes from these lists (the first line of each read as a header)
    train = ["train/CR.png", "train/CR.png", "train/b2.png", "train/c3.png", "train/d4.png"]
    folder = write_benchx(tmp_path / "COVIDx", train, ["val/f6.png", "val/g7.png"], ["test/i9.png", "test/j10.png"])
    ds = open_dataset(f"covidx:{root}?split_file={folder}")
    assert _splits(ds) == {
        "train": {"train/CR.1.2.840.113564.10.png", "train/CR.1.2.840.113564.11.png", "train/b2.jpg", "train/c3.jpeg"}
        | {"train/d4.png"},
        "val": {"val/f6.jpg", "val/g7.png"},
        "test": {"test/i9.png", "test/j10.png"},
    }
    assert ds.extra["unlisted_images_dropped"] == 3  # a1, e5, h8: the lists' first lines
    labels = dict(zip(ds.sample_ids("train"), ds.labels("train"), strict=True))
    assert labels["train/CR.1.2.840.113564.10.png"] == 1 and labels["train/b2.jpg"] == 1  # class of the line
    (folder / "test.txt").write_text("test/i9.png\ntest/j10.png\ntest/k11.png\n")
    with pytest.raises(LabelFileError, match=r"not in the dataset.*1 entries: test/k11.png$"):
        open_dataset(f"covidx:{root}?split_file={folder}")


def test_covidx_benchx_name_in_the_wrong_folder_is_not_matched(tmp_path):
    root = tmp_path / "covidx"
    _write_covidx(root)
    folder = write_benchx(tmp_path / "COVIDx", ["val/b2.png"], [], [])  # b2.jpg is a train image
    with pytest.raises(LabelFileError, match=r"1 entries: val/b2.png$"):
        open_dataset(f"covidx:{root}?split_file={folder}")


# --- NIH (MRM's split), TBX11K, Object-CXR: Image Index / file stems ---------------------------------------------


def test_nih_benchx_split_of_image_index_names(tmp_path):
    root = write_nih(tmp_path / "nih")  # patients 0-7, images PPPPPPPP_00K.png
    names = [f"{p:08d}_{k:03d}.png" for p in range(8) for k in range(2)]
    folder = write_benchx(tmp_path / "NIH_Chest_Xray", names[:10], names[10:12], names[12:15])
    ds = open_dataset(f"nih:{root}?split_file={folder}")
    assert _splits(ds) == {"train": set(names[:10]), "val": set(names[10:12]), "test": set(names[12:15])}
    assert ds.extra["unlisted_images_dropped"] == 1
    plain = open_dataset(f"nih:{root}")
    labels = {i: y for s in plain.splits for i, y in zip(plain.sample_ids(s), plain.labels(s), strict=True)}
    for split in ds.splits:
        for sample_id, y in zip(ds.sample_ids(split), ds.labels(split), strict=True):
            np.testing.assert_array_equal(y, labels[sample_id])
    (folder / "val.txt").write_text("00000005_000.png\n00000099_000.png\n")
    with pytest.raises(LabelFileError, match=r"1 entries: 00000099_000.png$"):
        open_dataset(f"nih:{root}?split_file={folder}")


def test_tbx11k_and_object_cxr_benchx_stems(tmp_path):
    tbx = open_dataset(f"tbx11k:{write_tbx11k(tmp_path / 'tbx')}")
    every = sorted(i for s in tbx.splits for i in tbx.sample_ids(s))  # health/htr0000.png ...
    stems = [Path(i).stem for i in every]
    folder = write_benchx(tmp_path / "TBX11K", stems[::2], stems[1::4], stems[3::4])
    ds = open_dataset(f"tbx11k:{tmp_path / 'tbx'}?split_file={folder}")
    assert _splits(ds) == {"train": set(every[::2]), "val": set(every[1::4]), "test": set(every[3::4])}
    assert {Path(i).parent.name for i in ds.sample_ids("test")} == {"health", "sick", "tb"}

    root = write_object_cxr(tmp_path / "ocxr")  # train t00000.jpg ..., dev d00000.jpg ...
    folder = write_benchx(tmp_path / "Object-CXR", ["t00000", "t00001"], ["d00000"], ["t00002", "d00001"])
    ds = open_dataset(f"object-cxr:{root}?split_file={folder}")
    assert _splits(ds) == {
        "train": {"train/t00000.jpg", "train/t00001.jpg"},
        "val": {"dev/d00000.jpg"},
        "test": {"train/t00002.jpg", "dev/d00001.jpg"},
    }
    (folder / "test.txt").write_text("09001\n")
    with pytest.raises(LabelFileError, match=r"1 entries: 09001$"):
        open_dataset(f"object-cxr:{root}?split_file={folder}")


def test_vindr_benchx_image_ids_val_from_official_train(tmp_path):
    root = write_vindr(tmp_path / "vindr")  # train ids 0..19, test ids 1000..1004 (32 hex digits)
    train, test = [f"{i:032x}" for i in range(20)], [f"{1000 + i:032x}" for i in range(5)]
    folder = write_benchx(tmp_path / "VinDr_CXR", train[:15], train[15:], test)
    ds = open_dataset(f"vindr-cxr:{root}?split_file={folder}")
    assert _splits(ds) == {"train": set(train[:15]), "val": set(train[15:]), "test": set(test)}
    assert ds.extra["unlisted_images_dropped"] == 0
