"""The ``zeroshot`` probe of ``run_probes``: prompts -> text embeddings -> ``ZeroShotProbe`` on the test split."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ..embeddings import EmbeddingSet
from ..per_label import per_label
from ..probes import ZeroShotProbe, ensemble, evaluate, summarize
from ..probes.bootstrap import add_intervals
from ..probes.metrics import METRICS
from .prompts import PromptSet, load_prompts

if TYPE_CHECKING:
    from ..encoder import Encoder

PROTOCOL = {
    "training_data": "none: the train and val splits are ignored (nothing is fitted or tuned)",
    "ensembling": "mean of the L2-normalized text embeddings of each class's prompts, normalized again",
    "scores": "classes: softmax over exp(logit_scale) * cos (+ logit_bias); pairs (CheXzero): softmax over "
    "(positive, negative) per label",
}


@torch.no_grad()
def prompt_embeddings(encoder: Encoder, groups: tuple[tuple[str, ...], ...], batch: int = 64) -> torch.Tensor:
    """``(len(groups), D)`` ensembled embeddings, one per group of prompts."""
    texts = [t for group in groups for t in group]
    out = torch.cat([encoder.encode_text(texts[i : i + batch]).float().cpu() for i in range(0, len(texts), batch)])
    sizes = [len(g) for g in groups]
    return ensemble(list(out.split(sizes)))


def zeroshot_probe(
    encoder: Encoder,
    test: EmbeddingSet,
    label_names: list[str],
    task: str,
    templates: str | None,
    dataset: str,
    device: str,
    trust=None,
    val: EmbeddingSet | None = None,
) -> dict:
    """Score the test split zero-shot; the result carries the prompts, the scale/bias and the metrics.

    ``trust`` (``encoderzoo.trust.Trust``) adds calibration and conformal entries, fitted on ``val`` when it is
    given (nothing is fitted for the zero-shot scores themselves)."""
    tower = encoder.require_text_tower()
    prompts: PromptSet = load_prompts(label_names, task, templates, dataset)
    scale = float(tower.logit_scale.detach().float().reshape(-1)[0])
    bias = float(tower.logit_bias.detach().float().reshape(-1)[0]) if tower.logit_bias is not None else None
    if prompts.mode == "classes":
        text_emb = prompt_embeddings(encoder, prompts.prompts)
    else:
        positive, negative = prompt_embeddings(encoder, prompts.prompts), prompt_embeddings(encoder, prompts.negative)
        text_emb = torch.stack([positive, negative], dim=1)
    probe = ZeroShotProbe(
        text_emb, scale, bias, mode=prompts.mode, binary=prompts.mode == "pairs" and task == "binary", device=device
    )
    test_proba = probe.predict_proba(test.features.numpy())
    metrics = evaluate(test.labels, test_proba, label_names)
    trusted = {}
    if trust is not None:
        val_data = (val.ids, val.labels, probe.predict_proba(val.features.numpy())) if val is not None else None
        trusted = trust.assess("zeroshot", val_data, (test.ids, test.labels, test_proba), label_names)
    return {
        "train_split": "ignored (zero-shot: no training data is used)",
        "prompts": prompts.to_dict(),
        "logit_scale": scale,
        "logit_bias": bias,
        **add_intervals({m: summarize([metrics[m]]) for m in METRICS}, test.labels, test_proba),
        "auroc_skipped": metrics["auroc_skipped"],
        **per_label(test.labels, metrics),
        **trusted,
    }
