"""``?labels=common``: one 18-finding vocabulary; a finding a dataset lacks is unknown (NaN), never negative."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from encoderzoo.data import open_dataset
from encoderzoo.data.cxr import covidx, nlm_tb, object_cxr, padchest, rsna, siim, tbx11k, vindr
from encoderzoo.data.table import CHEXPERT_LABELS, NIH_LABELS
from encoderzoo.data.vocabulary import COMMON_LABELS, NoCommonLabelsError, common_mapping, mapping_table, to_common

from .cxr_fixtures import write_covidx, write_rsna, write_vindr
from .datasets_fixtures import write_chexpert, write_nih

README = Path(__file__).resolve().parents[1] / "README.md"


def test_vocabulary_is_torchxrayvisions_default_list():
    assert len(COMMON_LABELS) == 18 and len(set(COMMON_LABELS)) == 18
    assert COMMON_LABELS[:4] == ["Atelectasis", "Consolidation", "Infiltration", "Pneumothorax"]
    assert COMMON_LABELS[-1] == "Enlarged Cardiomediastinum"


def test_several_sources_combine_positive_unknown_negative():
    mapping = {"Fracture": [0, 1]}
    labels = np.array([[1, np.nan], [0, np.nan], [0, 0], [np.nan, 1], [np.nan, np.nan]], np.float32)
    out = to_common(labels, "multi-label", mapping, ["Fracture", "Hernia"])
    assert out[0, 0] == 1.0 and np.isnan(out[1, 0]) and out[2, 0] == 0.0 and out[3, 0] == 1.0 and np.isnan(out[4, 0])
    assert np.isnan(out[:, 1]).all()  # Hernia not in the mapping: unknown for every image


def test_nih_common_labels(tmp_path):
    root = write_nih(tmp_path)
    native, common = open_dataset(f"nih:{root}"), open_dataset(f"nih:{root}?labels=common")
    assert common.label_names == COMMON_LABELS and common.task == "multi-label"
    for split in native.splits:
        n, c = native.labels(split), common.labels(split)
        assert np.array_equal(
            c[:, COMMON_LABELS.index("Pleural Thickening")], n[:, NIH_LABELS.index("Pleural_Thickening")]
        )
        assert np.array_equal(c[:, COMMON_LABELS.index("Effusion")], n[:, NIH_LABELS.index("Effusion")])
        for lacking in ("Lung Lesion", "Fracture", "Lung Opacity", "Enlarged Cardiomediastinum"):
            assert np.isnan(c[:, COMMON_LABELS.index(lacking)]).all()  # unknown, not negative
    assert common.extra["labels"]["unknown"] == [
        "Lung Lesion",
        "Fracture",
        "Lung Opacity",
        "Enlarged Cardiomediastinum",
    ]
    assert common.spec == f"nih:{root}?labels=common"


def test_chexpert_common_keeps_uncertain_unknown(tmp_path):
    ds = open_dataset(f"chexpert:{write_chexpert(tmp_path)}?labels=common&uncertain=ignore")
    y = ds.labels("train")
    assert np.isnan(y[:, COMMON_LABELS.index("Edema")]).all()  # -1 in every row
    assert set(np.unique(y[:, COMMON_LABELS.index("Cardiomegaly")])) == {0.0, 1.0}
    assert (y[:, COMMON_LABELS.index("Effusion")] == 0).all()  # "Pleural Effusion" blank -> negative
    assert np.isnan(y[:, COMMON_LABELS.index("Infiltration")]).all()


def test_vindr_synonyms(tmp_path):
    root = write_vindr(tmp_path)
    native, common = open_dataset(f"vindr-cxr:{root}"), open_dataset(f"vindr-cxr:{root}?labels=common")
    n, c = native.labels("test"), common.labels("test")
    assert np.array_equal(c[:, COMMON_LABELS.index("Effusion")], n[:, vindr.LABELS.index("Pleural effusion")])
    assert np.array_equal(c[:, COMMON_LABELS.index("Cardiomegaly")], n[:, vindr.LABELS.index("Cardiomegaly")])
    assert common.extra["labels"]["from"]["Nodule"] == ["Nodule/Mass"] == common.extra["labels"]["from"]["Mass"]
    assert common.extra["labels"]["from"]["Fibrosis"] == ["Pulmonary fibrosis"]
    assert common.extra["labels"]["unknown"] == ["Hernia", "Lung Lesion", "Enlarged Cardiomediastinum"]


def test_binary_dataset_maps_its_positive_class(tmp_path):
    root = write_rsna(tmp_path)
    native, common = open_dataset(f"rsna-pneumonia:{root}"), open_dataset(f"rsna-pneumonia:{root}?labels=common")
    c = common.labels("test")
    target = native.labels("test").astype(np.float32)
    assert np.array_equal(c[:, COMMON_LABELS.index("Pneumonia")], target)
    assert np.array_equal(c[:, COMMON_LABELS.index("Lung Opacity")], target)
    assert np.isnan(np.delete(c, [COMMON_LABELS.index("Pneumonia"), COMMON_LABELS.index("Lung Opacity")], 1)).all()


def test_dataset_without_common_labels_is_refused(tmp_path):
    with pytest.raises(NoCommonLabelsError, match=r"none of its labels \['negative', 'positive'\]"):
        open_dataset(f"covidx:{write_covidx(tmp_path)}?labels=common")
    with pytest.raises(ValueError, match="option labels='mine'"):
        open_dataset(f"covidx:{tmp_path}?labels=mine")


def _datasets() -> dict[str, tuple[list[str], str]]:
    return {
        "nih": (NIH_LABELS, "multi-label"),
        "chexpert": (CHEXPERT_LABELS, "multi-label"),
        "mimic-cxr": (CHEXPERT_LABELS, "multi-label"),
        "rsna-pneumonia": (rsna.LABELS, "binary"),
        "siim-pneumothorax": (siim.LABELS, "binary"),
        "vindr-cxr": (vindr.LABELS, "multi-label"),
        "padchest": (padchest.LABELS, "multi-label"),
    }


WITHOUT_COMMON = {
    "covidx": (covidx.LABELS, "binary"),
    "nlm-tb": (nlm_tb.LABELS, "binary"),
    "object-cxr": (object_cxr.LABELS, "binary"),
    "tbx11k": (tbx11k.LABELS, "multi-class"),
}


def test_readme_mapping_table_is_the_code_s():
    """The README's dataset x label table is what the code maps (regenerate with vocabulary.mapping_table)."""
    text = README.read_text()
    match = re.search(r"<!-- label-mapping:start -->\n(.*?)\n<!-- label-mapping:end -->", text, re.S)
    assert match, "README lacks the label-mapping table markers"
    assert match.group(1) == mapping_table(_datasets())
    assert common_mapping("siim-pneumothorax", siim.LABELS, "binary") == {"Pneumothorax": [1]}
    for scheme, (names, task) in WITHOUT_COMMON.items():  # the README says these share none of the 18
        assert common_mapping(scheme, names, task) == {}, scheme


def test_any_dataset_whose_names_are_findings(tmp_path):
    from .datasets_fixtures import write_npz

    native, common = open_dataset("sample:pneumoniamnist"), open_dataset("sample:pneumoniamnist?labels=common")
    assert common.task == "multi-label" and common.spec == "sample:pneumoniamnist?labels=common"
    y = common.labels("test")
    assert np.array_equal(y[:, COMMON_LABELS.index("Pneumonia")], native.labels("test").astype(np.float32))
    assert np.isnan(np.delete(y, COMMON_LABELS.index("Pneumonia"), 1)).all()
    assert np.array_equal(common.read("test", 0, 3), native.read("test", 0, 3))
    assert common.fingerprint("test") != native.fingerprint("test")
    with pytest.raises(NoCommonLabelsError, match=r"none of its labels \['0', '1', '2'\]"):
        open_dataset(f"npz:{write_npz(tmp_path / 'x.npz')}?labels=common")


def test_chestmnist_names_map_all_fourteen():
    from medmnist import INFO

    names = list(INFO["chestmnist"]["label"].values())
    mapping = common_mapping("medmnist", names, "multi-label")
    assert len(mapping) == 14 and mapping["Pleural Thickening"] == [names.index("pleural")]
    assert common_mapping("npz", names, "multi-label").get("Pleural Thickening") is None  # a ChestMNIST-only name
