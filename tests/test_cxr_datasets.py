"""The chest X-ray benchmarks read from miniature replicas of their real layouts, every trap included."""

from __future__ import annotations

import gzip
import hashlib

import numpy as np
import pytest

from encoderzoo.data import DatasetNotFoundError, open_dataset, read_image
from encoderzoo.data.cxr.files import LabelFileError
from encoderzoo.data.cxr.splits import seeded_split

from .cxr_fixtures import (
    PADCHEST_CSV,
    write_covidx,
    write_csv,
    write_mimic,
    write_nlm_tb,
    write_object_cxr,
    write_padchest,
    write_rsna,
    write_siim,
    write_tbx11k,
    write_vindr,
)

pydicom = pytest.importorskip("pydicom")


def _all_ids(ds):
    return {s: ds.sample_ids(s) for s in ds.splits}


def _labels_by_id(ds):
    return {i: y for s in ds.splits for i, y in zip(ds.sample_ids(s), ds.labels(s), strict=True)}


# --- MIMIC-CXR-JPG ---------------------------------------------------------------------------------------------------


def test_mimic_joins_study_labels_official_split_frontal_only(tmp_path):
    ds = open_dataset(f"mimic-cxr:{write_mimic(tmp_path)}")
    # 6 subjects x 2 studies x one frontal image; study 50000011 (subject 1, 2nd) has no label row
    assert {s: ds.num_samples(s) for s in ds.splits} == {"train": 7, "val": 2, "test": 2}
    assert ds.extra["images_without_label_row_dropped"] == 2  # its frontal and lateral image
    assert ds.extra["views"]["dropped"] == {"(blank)": 1, "LATERAL": 11}
    assert all(i.startswith(("p10000004/",)) for i in ds.sample_ids("val"))  # 'validate' -> val
    labels = _labels_by_id(ds)
    names = ds.label_names
    for sample_id, y in labels.items():
        study = sample_id.split("/")[1]
        first_study = study[1:] < "50000010"
        # labels follow the image's own study, not the subject's first row
        assert y[names.index("Pneumonia")] == (1.0 if first_study else 0.0)
        assert y[names.index("No Finding")] == (0.0 if first_study else 1.0)
        assert np.isnan(y[names.index("Edema")]) if first_study else y[names.index("Edema")] == 0.0  # -1 / blank
    assert ds.read("train", 0, 2).shape == (2, 12, 10)


@pytest.mark.parametrize("policy, expected", [("zeros", 0.0), ("ones", 1.0)])
def test_mimic_uncertain_policy_and_views_all(tmp_path, policy, expected):
    root = write_mimic(tmp_path)
    ds = open_dataset(f"mimic-cxr:{root}?uncertain={policy}&views=all")
    assert sum(ds.num_samples(s) for s in ds.splits) == 23  # 24 + 1 blank-view - 2 unlabelled
    edema = np.concatenate([ds.labels(s)[:, ds.label_names.index("Edema")] for s in ds.splits])
    assert set(edema.tolist()) == {expected, 0.0}
    assert ds.describe()["uncertain"] == policy
    lateral_only = open_dataset(f"mimic-cxr:{root}?views=LATERAL")
    assert sum(lateral_only.num_samples(s) for s in lateral_only.splits) == 11


def test_official_test_only_release_is_not_described_as_cut(tmp_path):
    ds = open_dataset(f"mimic-cxr:{write_mimic(tmp_path, subjects=3, test_subjects=3)}")
    assert ds.splits == ("test",) and ds.extra["split"] == "official" and "seed" not in ds.extra


def test_mimic_missing_columns_are_named(tmp_path):
    root = write_mimic(tmp_path)
    with gzip.open(root / "mimic-cxr-2.0.0-metadata.csv.gz", "wt") as fh:
        fh.write("dicom_id,subject_id,study_id\nx,1,2\n")
    with pytest.raises(LabelFileError, match=r"metadata.csv.gz lacks column\(s\) \['ViewPosition'\]"):
        open_dataset(f"mimic-cxr:{root}")


def test_mimic_missing_image_is_named_before_any_work(tmp_path):
    root = write_mimic(tmp_path)
    victim = next((root / "files").rglob("d000-*.jpg"))
    victim.unlink()
    with pytest.raises(DatasetNotFoundError, match=r"(?s)1 of the 11 listed image files do not exist.*d000-"):
        open_dataset(f"mimic-cxr:{root}")


# --- RSNA ------------------------------------------------------------------------------------------------------------


def test_rsna_one_sample_per_patient_from_box_rows(tmp_path):
    ds = open_dataset(f"rsna-pneumonia:{write_rsna(tmp_path)}")
    assert sum(ds.num_samples(s) for s in ds.splits) == 40  # 50 csv rows: positives have two box rows
    labels = _labels_by_id(ds)
    assert sum(labels.values()) == 10 and all(labels[p] == (i % 4 == 0) for i, p in enumerate(sorted(labels)))
    assert ds.task == "binary" and ds.label_names == ["no pneumonia", "pneumonia"]
    for split in ("train", "val", "test"):  # stratified: both classes in every split
        assert set(ds.labels(split).tolist()) == {0, 1}
    assert ds.extra["seed"] == 0 and ds.extra["split"].startswith("seeded, patient-level, stratified")


def test_rsna_jpeg_conversion_and_view_filter(tmp_path):
    jpg = open_dataset(f"rsna-pneumonia:{write_rsna(tmp_path / 'jpg', dicom=False)}")
    assert jpg.extra["images"] == ".jpg" and "not recorded" in jpg.extra["views"]
    with pytest.raises(ValueError, match="records no view"):
        open_dataset(f"rsna-pneumonia:{tmp_path / 'jpg'}?views=PA")
    pa = open_dataset(f"rsna-pneumonia:{write_rsna(tmp_path / 'dcm')}?views=PA")
    assert sum(pa.num_samples(s) for s in pa.splits) == 20 and pa.extra["views"]["dropped"] == {"AP": 20}


def test_view_not_recorded_is_kept_by_default_and_dropped_by_an_explicit_list(tmp_path):
    from .datasets_fixtures import write_dicom

    root = write_rsna(tmp_path)
    first = sorted((root / "stage_2_train_images").glob("*.dcm"))[0]
    write_dicom(first, np.zeros((12, 10), np.uint16))  # no ViewPosition tag
    default = open_dataset(f"rsna-pneumonia:{root}")
    assert sum(default.num_samples(s) for s in default.splits) == 40
    assert default.extra["views"]["view_not_recorded_kept"] == 1
    explicit = open_dataset(f"rsna-pneumonia:{root}?views=PA,AP")
    assert sum(explicit.num_samples(s) for s in explicit.splits) == 39
    assert explicit.extra["views"]["dropped"] == {"(unknown)": 1}


def test_rsna_detailed_class_info_must_agree(tmp_path):
    root = write_rsna(tmp_path)
    rows = (root / "stage_2_detailed_class_info.csv").read_text().splitlines()
    rows[1] = rows[1].replace("Lung Opacity", "Normal")
    (root / "stage_2_detailed_class_info.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(LabelFileError, match="disagrees with Target"):
        open_dataset(f"rsna-pneumonia:{root}")


# --- seeded splits ----------------------------------------------------------------------------------------------


def test_seeded_split_is_the_documented_hash_rule():
    """Per stratum, patients ordered by sha256(f'{seed}|{patient}') and cut at 70/15/15: re-derived here."""
    patients = [f"pt{i}" for i in range(40)]
    labels = np.array([i % 4 == 0 for i in range(40)], np.int64)
    got = seeded_split(patients, labels, {"train": 0.7, "val": 0.15, "test": 0.15}, seed=3)
    for stratum in (0, 1):
        members = [p for p, y in zip(patients, labels, strict=True) if y == stratum]
        order = sorted(members, key=lambda p: hashlib.sha256(f"3|{p}".encode()).hexdigest())
        n = len(order)
        expected = ["train"] * round(0.7 * n) + ["val"] * (round(0.85 * n) - round(0.7 * n))
        expected += ["test"] * (n - len(expected))
        assert [got[patients.index(p)] for p in order] == expected
    assert seeded_split(patients, labels, {"train": 0.7, "val": 0.15, "test": 0.15}, seed=4) != got


def test_seed_option_changes_split_and_is_recorded(tmp_path):
    root = write_rsna(tmp_path)
    a, b = open_dataset(f"rsna-pneumonia:{root}"), open_dataset(f"rsna-pneumonia:{root}?seed=1")
    assert a.sample_ids("test") != b.sample_ids("test") and b.extra["seed"] == 1
    assert open_dataset(f"rsna-pneumonia:{root}").sample_ids("test") == a.sample_ids("test")


# --- published split files --------------------------------------------------------------------------------------


def test_split_file_csv_and_benchx_folder(tmp_path):
    root = write_rsna(tmp_path / "rsna")
    ids = sorted(open_dataset(f"rsna-pneumonia:{root}").sample_ids("train"))[:6]
    write_csv(
        tmp_path / "split.csv",
        ["image", "split"],
        [[f"{i}.dcm", "train" if k < 4 else "test"] for k, i in enumerate(ids)],
    )
    ds = open_dataset(f"rsna-pneumonia:{root}?split_file={tmp_path / 'split.csv'}")
    assert ds.sample_ids("train") == ids[:4] and ds.sample_ids("test") == ids[4:6] and "val" not in ds.splits
    assert ds.extra["unlisted_images_dropped"] == 34
    folder = tmp_path / "benchx"
    folder.mkdir()
    (folder / "train.txt").write_text("\n".join(f"stage_2_train_images/{i}.dcm" for i in ids[:3]) + "\n")
    (folder / "val.txt").write_text(f"{ids[3]}\n")
    (folder / "test.txt").write_text("\n".join(ids[4:]) + "\n")
    ds = open_dataset(f"rsna-pneumonia:{root}?split_file={folder}")
    assert {s: ds.num_samples(s) for s in ds.splits} == {"train": 3, "val": 1, "test": 2}


def test_split_file_naming_unknown_images_is_refused(tmp_path):
    root = write_rsna(tmp_path / "rsna")
    write_csv(tmp_path / "split.csv", ["image", "split"], [["nobody.dcm", "train"], ["ghost", "test"]])
    with pytest.raises(LabelFileError, match=r"names images that are not in the dataset.*2 entries: nobody.dcm, ghost"):
        open_dataset(f"rsna-pneumonia:{root}?split_file={tmp_path / 'split.csv'}")


# --- SIIM-ACR --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("leading_space", [True, False])
def test_siim_rle_rows_become_one_label_and_patients_stay_together(tmp_path, leading_space):
    ds = open_dataset(f"siim-pneumothorax:{write_siim(tmp_path, leading_space)}")
    labels = _labels_by_id(ds)
    assert len(labels) == 24 and sum(labels.values()) == 8  # every 3rd of 24; positives have two RLE rows
    split_of = {i: s for s in ds.splits for i in ds.sample_ids(s)}
    by_patient: dict[str, set[str]] = {}
    for image_id, split in split_of.items():
        patient = int(image_id.rsplit(".", 1)[1]) // 2  # the fixture's PatientID
        by_patient.setdefault(patient, set()).add(split)
    assert all(len(s) == 1 for s in by_patient.values())  # both images of a patient in one split


def test_siim_missing_dicom_is_named_or_skipped(tmp_path):
    root = write_siim(tmp_path)
    victim = next((root / "dicom-images-train").rglob("*.1000.*.dcm"))
    victim.unlink()
    with pytest.raises(DatasetNotFoundError, match=r"(?s)1 of the 24 listed image files do not exist.*\.1000\."):
        open_dataset(f"siim-pneumothorax:{root}")
    ds = open_dataset(f"siim-pneumothorax:{root}?skip_corrupt=1")
    split = next(s for s in ds.splits if any(".1000." in i for i in ds.sample_ids(s)))
    images = ds.read(split, 0, ds.num_samples(split))
    assert [im is None for im in images] == [".1000." in i for i in ds.sample_ids(split)]


# --- VinDr-CXR -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("readers", ["majority", "any"])
def test_vindr_readers_and_other_disease_spelling(tmp_path, readers):
    ds = open_dataset(f"vindr-cxr:{write_vindr(tmp_path)}?readers={readers}")
    assert ds.num_samples("test") == 5 and ds.num_samples("train") + ds.num_samples("val") == 20
    assert len(ds.label_names) == 28 and "Other diseases" in ds.label_names
    names, labels = ds.label_names, _labels_by_id(ds)
    for i in range(20):
        y = labels[f"{i:032x}"]
        votes = i % 4  # readers marking Cardiomegaly
        assert y[names.index("Cardiomegaly")] == (votes >= 2 if readers == "majority" else votes >= 1)
        assert y[names.index("Other diseases")] == (readers == "any")  # one of three readers
        assert y[names.index("Pleural effusion")] == (i % 2 == 0)
    test = dict(zip(ds.sample_ids("test"), ds.labels("test"), strict=True))
    assert all(y[names.index("Other diseases")] == 1.0 for y in test.values())  # read from "Other disease"


def test_vindr_monochrome1_12bit_through_the_dicom_reader(tmp_path):
    root = write_vindr(tmp_path)
    ds = open_dataset(f"vindr-cxr:{root}")
    image_id = "00000000000000000000000000000001"  # odd: MONOCHROME1
    raw = pydicom.dcmread(root / "train" / f"{image_id}.dicom").pixel_array.astype(np.float64)
    split = next(s for s in ds.splits if image_id in ds.sample_ids(s))
    index = ds.sample_ids(split).index(image_id)
    decoded = ds.read(split, index, index + 1)[0]
    assert decoded.dtype == np.uint16 and np.array_equal(decoded, read_image(root / "train" / f"{image_id}.dicom"))
    expected = 1.0 - (raw - raw.min()) / (raw.max() - raw.min())  # inverted, stretched to the 16-bit range
    # read_dicom rounds to the nearest of 65536 levels: at most half a level off, plus float64 rounding
    assert np.abs(decoded / 65535.0 - expected).max() <= 0.5 / 65535.0 + 1e-12


def test_vindr_missing_label_column_is_named(tmp_path):
    root = write_vindr(tmp_path)
    csv_path = root / "annotations" / "image_labels_test.csv"
    text = csv_path.read_text().replace("Other disease", "Something else", 1)
    csv_path.write_text(text)
    with pytest.raises(LabelFileError, match=r"image_labels_test.csv lacks VinDr-CXR column\(s\) \['Other diseases'\]"):
        open_dataset(f"vindr-cxr:{root}")


# --- COVIDx / NLM-TB / PadChest / Object-CXR / TBX11K ----------------------------------------------------------------


def test_covidx_official_splits_and_bad_class(tmp_path):
    root = write_covidx(tmp_path)
    ds = open_dataset(f"covidx:{root}")
    assert {s: ds.num_samples(s) for s in ds.splits} == {"train": 12, "val": 4, "test": 4}
    assert ds.labels("test").tolist() == [0, 1, 0, 1] and ds.label_names == ["negative", "positive"]
    (root / "test.txt").write_text("p1 x.png COVID-19 sirm\n")
    with pytest.raises(LabelFileError, match=r"test.txt:1: class 'COVID-19' is not positive / negative"):
        open_dataset(f"covidx:{root}")


def test_patients_in_two_official_splits_are_counted(tmp_path):
    rng = np.random.default_rng(0)
    images = {
        "train": [
            ("p1", rng.integers(0, 256, (8, 8), np.uint8), "positive"),
            ("p2", rng.integers(0, 256, (8, 8), np.uint8), "negative"),
        ],
        "val": [("p3", rng.integers(0, 256, (8, 8), np.uint8), "positive")],
        "test": [("p1", rng.integers(0, 256, (8, 8), np.uint8), "negative")],  # p1 also in train
    }
    ds = open_dataset(f"covidx:{write_covidx(tmp_path, images)}")
    assert ds.extra["patients_in_two_splits"] == 1
    assert "patients_in_two_splits" not in open_dataset(f"covidx:{write_covidx(tmp_path / 'clean')}").extra


def test_nlm_tb_label_from_last_digit(tmp_path):
    root = write_nlm_tb(tmp_path, "MCUCXR")
    ds = open_dataset(f"nlm-tb:{root}")
    labels = _labels_by_id(ds)
    assert len(labels) == 20 and all(labels[name] == int(name[-5]) for name in labels)
    (root / "CXR_png" / "MCUCXR_0099.png").write_bytes(b"")
    with pytest.raises(LabelFileError, match=r"do not end in _0 or _1: \['MCUCXR_0099.png'\]"):
        open_dataset(f"nlm-tb:{root}")


def test_padchest_findings_views_and_16bit(tmp_path):
    root = write_padchest(tmp_path)
    ds = open_dataset(f"padchest:{root}")
    assert ds.extra["rows_without_labels_dropped"] == 6 and ds.extra["views"]["dropped"] == {"L": 12}
    names, labels = ds.label_names, _labels_by_id(ds)
    assert len(labels) == 30  # 48 - 6 unlabelled - 12 lateral (none of the unlabelled is lateral)
    for image_id, y in labels.items():
        i = int(image_id[16:21])
        positives = {names[j] for j in np.flatnonzero(y == 1)}
        expected = [
            set(),
            {"Pneumonia", "Infiltration"},  # alveolar pattern -> Infiltration (torchxrayvision's mapping)
            {"Effusion", "Cardiomegaly"},
            {"Infiltration"},
            {"Fracture", "Support Devices"},
            {"Nodule"},
            {"Pleural_Thickening"},
        ][i % 8]
        assert positives == expected, image_id
    assert ds.read(ds.splits[0], 0, 1).dtype == np.uint16
    patients = {s: {int(i[16:21]) // 2 for i in ds.sample_ids(s)} for s in ds.splits}
    assert not (patients["train"] & patients["val"]) and not (patients["train"] & patients.get("test", set()))


def test_padchest_bad_labels_cell(tmp_path):
    root = write_padchest(tmp_path)
    text = (root / PADCHEST_CSV).read_text().replace("['interstitial pattern']", "[unclosed", 1)
    (root / PADCHEST_CSV).write_text(text)
    with pytest.raises(LabelFileError, match="is not a list literal"):
        open_dataset(f"padchest:{root}")


@pytest.mark.parametrize("with_test", [False, True])
def test_object_cxr_annotation_presence(tmp_path, with_test):
    ds = open_dataset(f"object-cxr:{write_object_cxr(tmp_path, with_test)}")
    assert ds.num_samples("test") == 6 and ds.labels("test").tolist() == [0, 1] * 3
    if with_test:
        assert ds.num_samples("val") == 6 and ds.num_samples("train") == 16
    else:
        assert ds.num_samples("train") + ds.num_samples("val") == 16


def test_object_cxr_image_path_spelling(tmp_path):
    root = write_object_cxr(tmp_path)
    for name in ("train.csv", "dev.csv"):
        text = (root / name).read_text().replace("image_name,", "image_path,", 1)
        lines = text.splitlines()
        (root / name).write_text("\n".join([lines[0]] + [f"/path/{line}" for line in lines[1:]]) + "\n")
    ds = open_dataset(f"object-cxr:{root}")
    assert ds.labels("test").tolist() == [0, 1] * 3 and ds.sample_ids("test")[0] == "dev/d00000.jpg"


def test_tbx11k_lists_and_classes(tmp_path):
    ds = open_dataset(f"tbx11k:{write_tbx11k(tmp_path)}")
    assert ds.task == "multi-class" and ds.label_names == ["healthy", "sick but not TB", "tuberculosis"]
    assert ds.num_samples("test") == 6 and ds.num_samples("train") + ds.num_samples("val") == 24
    assert all(y == {"health": 0, "sick": 1, "tb": 2}[i.split("/")[0]] for i, y in _labels_by_id(ds).items())
    assert sorted(ds.labels("val").tolist()) == [0, 1, 2]  # stratified 10% of train


def test_unknown_option_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['readers'\]"):
        open_dataset(f"rsna-pneumonia:{write_rsna(tmp_path)}?readers=any")
    with pytest.raises(ValueError, match="readers must be"):
        open_dataset(f"vindr-cxr:{write_vindr(tmp_path / 'v')}?readers=two")
