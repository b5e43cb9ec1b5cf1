"""Zero-shot prompts: class prompts from a dataset's label names and templates, or positive/negative pairs.

A prompt file is JSON (all keys optional)::

    {
      "description": "what these prompts are for",
      "mode": "classes" | "pairs",           # default: pairs for multi-label tasks, classes otherwise
      "templates": ["a chest x-ray showing {}."],  # classes mode: {} is replaced by each class's text
      "names": {"Pleural_Thickening": "pleural thickening"},  # a label's text (default: its name)
      "prompts": {"normal": ["a chest x-ray with clear lungs."]},  # explicit prompts for a class; in pairs
                                             # mode {"label": {"positive": [...], "negative": [...]}}
      "positive": ["{}."], "negative": ["no {}."]   # pairs mode: per-label positive / negative templates
    }

``classes``: one prompt list per class; a class scores by the similarity of the image to the mean of its
prompts' L2-normalized embeddings (prompt ensembling), softmax over classes. ``pairs`` (CheXzero): per label,
a softmax over the similarities to its positive and negative prompt ensembles gives P(label present); for a
binary task the label is the positive class (index 1).

A plain string instead of a file holds ``|``-separated templates (``"an x-ray of {}|{}"``); in pairs mode the
negative templates are the same with ``{}`` replaced by ``no {}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from ..errors import EncoderZooError

Mode = Literal["classes", "pairs"]
PROMPT_PACKAGE = "encoderzoo"
PROMPT_FOLDER = "prompts"
_KEYS = {"description", "mode", "templates", "names", "prompts", "positive", "negative"}


class PromptError(EncoderZooError, ValueError):
    """A prompt file or template string that cannot make prompts for this dataset."""


@dataclass(frozen=True)
class PromptSet:
    """The prompts of one zero-shot run: per class (``classes``) or per label, positive and negative (``pairs``)."""

    mode: Mode
    label_names: tuple[str, ...]
    prompts: tuple[tuple[str, ...], ...]
    """``classes``: prompts of each class. ``pairs``: positive prompts of each label."""
    negative: tuple[tuple[str, ...], ...] = ()
    """``pairs``: negative prompts of each label."""
    source: str = ""
    """Where the prompts came from (file path, ``builtin:NAME.json`` or ``--templates`` text), for results.json."""

    def to_dict(self) -> dict:
        out: dict = {"source": self.source, "mode": self.mode}
        if self.mode == "classes":
            out["prompts"] = dict(zip(self.label_names, map(list, self.prompts), strict=True))
        else:
            out["positive"] = {n: list(p) for n, p in zip(self._pair_labels(), self.prompts, strict=True)}
            out["negative"] = {n: list(p) for n, p in zip(self._pair_labels(), self.negative, strict=True)}
        return out

    def _pair_labels(self) -> tuple[str, ...]:
        return self.label_names[1:] if len(self.prompts) == 1 and len(self.label_names) == 2 else self.label_names


def default_prompt_file(dataset: str) -> str:
    """The shipped prompt file for a dataset spec: MedMNIST names (and the bundled sample) by name,
    ``nih:`` and ``chexpert:`` by scheme, else ``default.json``."""
    scheme, _, rest = dataset.partition(":")
    name = rest.partition("?")[0].partition("@")[0].lower() if scheme in ("medmnist", "sample") else scheme
    available = {p.name for p in resources.files(PROMPT_PACKAGE).joinpath(PROMPT_FOLDER).iterdir()}
    return f"{name}.json" if f"{name}.json" in available else "default.json"


def _read(templates: str | Path | None, dataset: str) -> tuple[dict, str]:
    if templates is None:
        name = default_prompt_file(dataset)
        text = resources.files(PROMPT_PACKAGE).joinpath(PROMPT_FOLDER, name).read_text()
        return json.loads(text), f"builtin:{name}"
    path = Path(templates).expanduser()
    if path.is_file():
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise PromptError(f"prompt file {path} is not valid JSON: {err}") from err
        if not isinstance(data, dict):
            raise PromptError(f"prompt file {path} must hold a JSON object (see encoderzoo.text.prompts)")
        return data, str(path)
    text = str(templates)
    if text.endswith(".json"):
        raise PromptError(f"prompt file {text} does not exist")
    parts = [t.strip() for t in text.split("|") if t.strip()]
    if not parts:
        raise PromptError("--templates is empty: give a JSON file or '|'-separated templates with {}")
    return {"templates": parts, "positive": parts, "negative": [p.replace("{}", "no {}") for p in parts]}, text


def _templates(data: dict, key: str, source: str) -> list[str]:
    values = data.get(key)
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise PromptError(f"{source}: '{key}' must be a non-empty list of template strings")
    missing = [v for v in values if "{}" not in v]
    if missing:
        raise PromptError(f"{source}: every template in '{key}' needs a {{}} for the label text; not {missing}")
    return values


def load_prompts(
    label_names: list[str], task: str, templates: str | Path | None = None, dataset: str = ""
) -> PromptSet:
    """Build the prompts for ``label_names`` of a ``task`` (binary, multi-class, multi-label).

    ``templates``: a JSON prompt file, ``|``-separated templates, or ``None`` for the shipped file of ``dataset``.
    """
    data, source = _read(templates, dataset)
    unknown_keys = sorted(set(data) - _KEYS)
    if unknown_keys:
        raise PromptError(f"{source}: unknown key(s) {unknown_keys}; known: {sorted(_KEYS)}")
    mode = data.get("mode") or ("pairs" if task == "multi-label" else "classes")
    if mode not in ("classes", "pairs"):
        raise PromptError(f"{source}: mode must be 'classes' or 'pairs', got {mode!r}")
    if task == "multi-label" and mode == "classes":
        raise PromptError(f"{source}: a multi-label task needs mode 'pairs' (a positive and a negative per label)")
    if task == "multi-class" and mode == "pairs":
        raise PromptError(f"{source}: mode 'pairs' needs binary or multi-label labels; this task is multi-class")
    names, explicit = data.get("names", {}), data.get("prompts", {})
    for key, mapping in (("names", names), ("prompts", explicit)):
        if not isinstance(mapping, dict):
            raise PromptError(f"{source}: '{key}' must map label names to text")
        stray = sorted(set(mapping) - set(label_names))
        if stray:
            raise PromptError(f"{source}: '{key}' names label(s) {stray} this dataset does not have: {label_names}")
    text = {label: str(names.get(label, label.replace("_", " ").lower())) for label in label_names}
    bare = [label for label in label_names if label.strip().isdigit() and label not in names and label not in explicit]
    if bare:
        raise PromptError(
            f"the labels {bare} are bare numbers, which no text tower can read: give a prompt file whose 'names' "
            "(or 'prompts') say what each label is (--templates FILE)"
        )
    fill = lambda tpl, label: [t.replace("{}", text[label]) for t in tpl]  # noqa: E731
    if mode == "classes":
        tpl = _templates(data, "templates", source) if len(explicit) < len(label_names) else []
        prompts = []
        for label in label_names:
            given = explicit.get(label)
            if given is not None and (not isinstance(given, list) or not all(isinstance(p, str) for p in given)):
                raise PromptError(f"{source}: prompts of {label!r} must be a list of strings")
            prompts.append(tuple(given) if given else tuple(fill(tpl, label)))
        return PromptSet("classes", tuple(label_names), tuple(prompts), source=source)
    labels = label_names[1:] if task == "binary" else label_names
    templated = [label for label in labels if label not in explicit]
    positive = _templates(data, "positive", source) if templated else []
    negative = _templates(data, "negative", source) if templated else []
    pos, neg = [], []
    for label in labels:
        given = explicit.get(label)
        if given is None:
            pos.append(tuple(fill(positive, label)))
            neg.append(tuple(fill(negative, label)))
            continue
        ok = isinstance(given, dict) and set(given) == {"positive", "negative"}
        if not ok or not all(isinstance(v, list) and v and all(isinstance(t, str) for t in v) for v in given.values()):
            raise PromptError(
                f"{source}: in mode 'pairs', prompts of {label!r} must be "
                '{"positive": [...], "negative": [...]} (non-empty lists of strings)'
            )
        pos.append(tuple(given["positive"]))
        neg.append(tuple(given["negative"]))
    return PromptSet("pairs", tuple(label_names), tuple(pos), tuple(neg), source=source)
