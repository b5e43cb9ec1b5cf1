"""encoderzoo.probes: kNN, linear, few-shot and data-curation probes on embeddings, computed in torch on the
device (CUDA when present). Estimators follow scikit-learn: ``fit`` / ``predict`` / ``predict_proba`` /
``score``, ``get_params``, learned attributes ending in ``_``.

Installed as ``encoderzoo.probes`` (the bare name ``probes`` belongs to an unrelated PyPI package).
"""

from .curation import curate, evaluate_curation, kmeans, near_duplicates
from .fewshot import PrototypeProbe, few_shot, summarize
from .knn import KNNProbe
from .linear import DEFAULT_C_GRID, LinearProbe
from .metrics import binary_auroc, evaluate
from .zeroshot import ZeroShotProbe, ensemble

__all__ = [
    "DEFAULT_C_GRID",
    "KNNProbe",
    "LinearProbe",
    "PrototypeProbe",
    "ZeroShotProbe",
    "binary_auroc",
    "curate",
    "ensemble",
    "evaluate",
    "evaluate_curation",
    "few_shot",
    "kmeans",
    "near_duplicates",
    "summarize",
]
