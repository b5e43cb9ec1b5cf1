"""Chest X-ray benchmarks read as they are distributed, one small module per dataset.

``open_cxr(scheme, DIR, options)`` for the schemes in ``LOADERS``. Every spec takes ``?seed=`` (seeded splits),
``?split_file=PATH`` (a published split list), ``?views=frontal|all|PA,AP`` (where views are recorded) and
``?skip_corrupt=1``; ``mimic-cxr`` also ``?uncertain=ignore|zeros|ones``, ``vindr-cxr`` ``?readers=majority|any``.
Licences, access terms and overlaps are in each module's docstring and the README.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..table import TableDataset
from . import covidx, mimic, nlm_tb, object_cxr, padchest, rsna, siim, tbx11k, vindr
from .build import CxrOptions

LOADERS: dict[str, tuple[Callable[[Path, CxrOptions], TableDataset], dict[str, str]]] = {
    "mimic-cxr": (mimic.open_mimic, mimic.SPECIFIC),
    "rsna-pneumonia": (rsna.open_rsna, rsna.SPECIFIC),
    "siim-pneumothorax": (siim.open_siim, siim.SPECIFIC),
    "vindr-cxr": (vindr.open_vindr, vindr.SPECIFIC),
    "covidx": (covidx.open_covidx, covidx.SPECIFIC),
    "nlm-tb": (nlm_tb.open_nlm_tb, nlm_tb.SPECIFIC),
    "padchest": (padchest.open_padchest, padchest.SPECIFIC),
    "object-cxr": (object_cxr.open_object_cxr, object_cxr.SPECIFIC),
    "tbx11k": (tbx11k.open_tbx11k, tbx11k.SPECIFIC),
}


def open_cxr(scheme: str, target: str, options: dict[str, str]) -> TableDataset:
    """Open ``scheme:target``; takes the options it knows out of ``options`` (the caller rejects the rest)."""
    opener, specific = LOADERS[scheme]
    return opener(Path(target).expanduser(), CxrOptions.pop(options, specific))
