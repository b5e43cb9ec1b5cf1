"""The adapted folder (``encoderzoo adapt --out DIR``) as one type: read, checked and parsed once.

``read_adapted_folder`` checks everything a consumer relies on (written by ``encoderzoo adapt``, a format this
version reads, the method's files present and readable with finite tensors, a head that fits the task, results
that belong to this adapter) and returns an ``AdaptedFolder`` holding the parsed metadata, the base spec, the
results and the tensors it read, so ``load``, ``push`` and the model card never read a file twice.

```
encoderzoo.json        base (name it was loaded by, spec, revision, weight fingerprint), method and its config,
                       task, label names, dataset, image size, parameter counts
adapter_config.json    LoRA only: peft's own layout, so plain `PeftModel.from_pretrained(timm_trunk, DIR)` works
adapter_model.safetensors
adapter.safetensors    prompts / ACE-HGNN / full fine-tuning / CoOp / ACE-LoRA: every trainable tensor outside the head
head.safetensors       the classification head
results.json           test metrics in the probe schema, plus the training history
README.md              the model card
checkpoints/           training state for --resume (never pushed)
```
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .adapted_methods import method_facts, registered_method_facts
from .errors import EncoderZooError
from .spec import EncoderSpec

FORMAT_VERSION = 1
SPEC_FILE = "encoderzoo.json"
RESULTS_FILE = "results.json"
HEAD_FILE = "head.safetensors"
ADAPTER_FILE = "adapter.safetensors"
PEFT_CONFIG_FILE = "adapter_config.json"
PEFT_WEIGHTS_FILE = "adapter_model.safetensors"
CARD_FILE = "README.md"
LICENCE_FILE = "LICENSE"
NOTICE_FILE = "NOTICE"
CHECKPOINT_DIR = "checkpoints"


class _MethodFiles(Mapping[str, tuple[str, ...]]):
    """Deprecated: ``METHOD_FILES[name]`` is ``encoderzoo.adapted_methods.method_facts(name).files``."""

    def __getitem__(self, name: str) -> tuple[str, ...]:
        facts = method_facts(name)
        if facts is None:
            raise KeyError(name)
        return facts.files

    def __iter__(self) -> Iterator[str]:
        return iter(registered_method_facts())

    def __len__(self) -> int:
        return len(registered_method_facts())


METHOD_FILES: Mapping[str, tuple[str, ...]] = _MethodFiles()
"""Adapter files each registered method writes next to ``encoderzoo.json``, ``results.json`` and the head."""
TASKS = {
    "binary": "binary",
    "multi-class": "multi-class",
    "multiclass": "multi-class",
    "multi-label": "multi-label",
    "multilabel": "multi-label",
}


class InvalidAdaptedFolderError(EncoderZooError, ValueError):
    """The folder is not a complete, consistent adapted folder written by ``encoderzoo adapt``."""


@dataclass(frozen=True)
class AdaptedFolder:
    """A checked adapted folder: its metadata, base spec, results, the tensors read while checking it, and the
    files a push uploads. Built by ``read_adapted_folder``; consumers take it instead of reading files again."""

    path: Path
    meta: dict[str, Any]
    results: dict[str, Any]
    """``results.json`` (empty where it is not there yet and was not required)."""
    spec: EncoderSpec
    """The base's spec, as the adapter was trained on it."""
    files: tuple[str, ...]
    """Files uploaded from the folder as they are (the card and notice are generated)."""
    tensors: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    """File name -> the tensors read from it while checking (the head; the adapter; LoRA weights if checked)."""

    @property
    def method(self) -> str:
        return self.meta["method"]

    @property
    def base(self) -> dict[str, Any]:
        return self.meta["base"]

    @property
    def base_revision(self) -> str:
        return str(self.base.get("revision") or self.spec.source.revision)


def read_adapted_folder(
    folder: str | os.PathLike[str],
    *,
    meta: dict[str, Any] | None = None,
    require_results: bool = True,
    read_lora: bool = True,
) -> AdaptedFolder:
    """Check ``folder`` and return it; ``InvalidAdaptedFolderError`` says what is wrong and what to do.

    ``meta``: ``encoderzoo.json`` already parsed by the caller (it is not read again). ``require_results``:
    ``False`` accepts a folder without ``results.json`` (saved before testing, e.g. to load it); results that are
    there are checked either way. ``read_lora=False`` leaves peft's two files to peft, which reads and checks them
    when it attaches the adapter (so loading reads them once).
    """
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise InvalidAdaptedFolderError(f"{path} is not a folder; give the --out folder of `encoderzoo adapt`")
    meta = meta if meta is not None else _read_json(path / SPEC_FILE, what="adapted-folder metadata")
    if meta.get("kind") != "adapted":
        raise InvalidAdaptedFolderError(
            f"{path / SPEC_FILE} does not describe an adapted encoder (kind={meta.get('kind')!r}, expected "
            "'adapted'): only folders written by `encoderzoo adapt` can be pushed"
        )
    version = meta.get("format_version")
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise InvalidAdaptedFolderError(
            f"{path / SPEC_FILE} was written by a newer encoderzoo (format {version}); upgrade encoderzoo to read it"
        )
    if version != FORMAT_VERSION:
        raise InvalidAdaptedFolderError(
            f"{path / SPEC_FILE} has format_version {version!r}; this encoderzoo reads {FORMAT_VERSION}"
        )
    missing = [k for k in ("base", "method", "task", "label_names", "dataset") if k not in meta]
    if missing or not isinstance(meta.get("base"), dict) or "spec" not in meta["base"]:
        raise InvalidAdaptedFolderError(
            f"{path / SPEC_FILE} lacks {missing or ['base.spec']}; re-run `encoderzoo adapt`"
        )
    method = meta["method"]
    facts = method_facts(method)
    if facts is None:
        raise InvalidAdaptedFolderError(
            f"{path / SPEC_FILE}: unknown method {method!r}; expected one of {sorted(registered_method_facts())}"
        )
    if meta["task"] not in TASKS:
        raise InvalidAdaptedFolderError(f"{path / SPEC_FILE}: unknown task {meta['task']!r}")
    try:
        spec = EncoderSpec.from_dict({**meta["base"]["spec"], "tiny": {}})
    except (TypeError, ValueError, KeyError) as err:
        raise InvalidAdaptedFolderError(f"{path / SPEC_FILE}: the base spec cannot be read ({err})") from err

    has_results = require_results or (path / RESULTS_FILE).is_file()
    files = [SPEC_FILE, *([RESULTS_FILE] if has_results else []), HEAD_FILE, *facts.files]
    absent = [f for f in files if not (path / f).is_file()]
    if absent:
        raise InvalidAdaptedFolderError(
            f"{path} lacks {absent}, which a {method!r} adapter needs; the folder is incomplete: re-run "
            "`encoderzoo adapt` (with --resume if it was interrupted)"
        )
    tensors = {HEAD_FILE: _read_safetensors(path / HEAD_FILE)}
    _check_head(path, tensors[HEAD_FILE], meta)
    if PEFT_WEIGHTS_FILE in facts.files and read_lora:
        tensors[PEFT_WEIGHTS_FILE] = _check_lora(path, meta)
    if ADAPTER_FILE in facts.files:
        tensors[ADAPTER_FILE] = _read_safetensors(path / ADAPTER_FILE)
        if not tensors[ADAPTER_FILE]:
            raise InvalidAdaptedFolderError(f"{path / ADAPTER_FILE} holds no tensors; the adapter is missing")
    results = _read_json(path / RESULTS_FILE, what="results") if has_results else {}
    if has_results:
        _check_results(path, results, meta, spec)
    if (path / LICENCE_FILE).is_file():
        files.append(LICENCE_FILE)
    return AdaptedFolder(path, meta, results, spec, tuple(files), tensors)


def _read_json(path: Path, *, what: str) -> dict[str, Any]:
    if not path.is_file():
        hint = "it was not written by `encoderzoo adapt`" if path.name == SPEC_FILE else "the folder is incomplete"
        raise InvalidAdaptedFolderError(f"{path.parent} has no {path.name} ({what}): {hint}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InvalidAdaptedFolderError(f"{path} is not valid JSON ({err}); the file is damaged") from err
    if not isinstance(data, dict):
        raise InvalidAdaptedFolderError(f"{path} should hold a JSON object")
    return data


def _read_safetensors(path: Path) -> dict[str, Any]:
    import torch
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path))
    except Exception as err:  # safetensors raises several types for truncated or damaged files
        raise InvalidAdaptedFolderError(
            f"{path} cannot be read ({type(err).__name__}: {err}); the file is damaged: re-run `encoderzoo adapt`"
        ) from err
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise InvalidAdaptedFolderError(f"{path} holds NaN/inf values in {bad[:5]}; the adapter diverged or is damaged")
    return tensors


def _check_head(path: Path, head: dict[str, Any], meta: dict[str, Any]) -> None:
    weight, bias = head.get("weight"), head.get("bias")
    if weight is None or bias is None or weight.ndim != 2 or bias.shape != weight.shape[:1]:
        raise InvalidAdaptedFolderError(
            f"{path / HEAD_FILE} should hold a linear head (weight (outputs, dim), bias (outputs,)); "
            f"found {sorted(head)}"
        )
    labels = len(meta["label_names"])
    expected = 1 if TASKS[meta["task"]] == "binary" else labels
    if weight.shape[0] != meta.get("num_outputs", expected) or weight.shape[0] != expected:
        raise InvalidAdaptedFolderError(
            f"{path / HEAD_FILE} has {weight.shape[0]} outputs, but the task is {meta['task']} with {labels} "
            f"label(s) ({expected} expected): the head does not belong to this folder's metadata"
        )


def _check_lora(path: Path, meta: dict[str, Any]) -> dict[str, Any]:
    config = _read_json(path / PEFT_CONFIG_FILE, what="peft LoRA config")
    if str(config.get("peft_type", "")).upper() != "LORA":
        raise InvalidAdaptedFolderError(
            f"{path / PEFT_CONFIG_FILE} is not a LoRA config (peft_type {config.get('peft_type')!r})"
        )
    wanted = meta.get("method_config") or {}
    differ = [k for k in ("r", "lora_alpha") if k in config and k in wanted and config[k] != wanted[k]]
    if "alpha" in wanted and "lora_alpha" in config and config["lora_alpha"] != wanted["alpha"]:
        differ.append("alpha")
    if differ:
        raise InvalidAdaptedFolderError(
            f"{path / PEFT_CONFIG_FILE} disagrees with method_config in {SPEC_FILE} on {differ}: the adapter "
            "files come from another run"
        )
    tensors = _read_safetensors(path / PEFT_WEIGHTS_FILE)
    if not any("lora_" in k for k in tensors):
        raise InvalidAdaptedFolderError(f"{path / PEFT_WEIGHTS_FILE} holds no LoRA tensors")
    return tensors


def _check_results(path: Path, results: dict[str, Any], meta: dict[str, Any], spec: EncoderSpec) -> None:
    """results.json must describe this adapter: same base, method, dataset, task and parameter count."""
    where = path / RESULTS_FILE
    training = results.get("training")
    if not isinstance(training, dict) or "trainable_params" not in training:
        raise InvalidAdaptedFolderError(f"{where} has no training record: it is not the results of `encoderzoo adapt`")
    protocol = results.get("protocol") if isinstance(results.get("protocol"), dict) else {}
    checks = [
        ("method", protocol.get("method", results.get("method")), meta["method"]),
        ("base encoder", results.get("base_encoder"), spec.name),
        ("encoder", results.get("encoder"), f"{spec.name}+{meta['method']}"),
        ("base revision", results.get("revision"), meta["base"].get("revision")),
        ("dataset", results.get("dataset"), meta["dataset"]),
        ("task", TASKS.get(results.get("task"), results.get("task")), TASKS[meta["task"]]),
        ("trainable parameters", training.get("trainable_params"), meta.get("trainable_params")),
    ]
    differ = [
        f"{name}: results.json says {got!r}, {SPEC_FILE} says {want!r}"
        for name, got, want in checks
        if got is not None and want is not None and got != want
    ]
    if differ:
        raise InvalidAdaptedFolderError(
            f"{where} does not match the adapter in {path}: "
            + "; ".join(differ)
            + ". The results come from another run: re-run `encoderzoo adapt` or copy the matching results.json"
        )


def public_dataset(dataset: str) -> str:
    """A dataset spec without local paths or query options (``npz:/home/me/x.npz`` -> ``npz:x.npz``)."""
    kind, sep, rest = str(dataset).partition(":")
    if not sep:
        return Path(kind).name
    rest = rest.split("?")[0]
    if kind in ("npz", "folder", "nih", "chexpert", "local-dir"):
        rest = Path(rest.rstrip("/")).name
    return f"{kind}:{rest}"
