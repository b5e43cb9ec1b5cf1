"""Saving and rebuilding adapted encoders: what ``encoderzoo adapt --out DIR`` leaves and ``load("local-dir:DIR")``
rebuilds. The folder's layout, its file names and its checks live in ``encoderzoo.adapted_folder``.

Base weights are never copied: the folder names its base and the base's weight fingerprint, and loading
refuses a base whose spec or fingerprint differs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from .. import __version__
from ..adapted_folder import (  # noqa: F401  (RESULTS_FILE, CHECKPOINT_DIR: re-exported for adapt)
    ADAPTER_FILE,
    CHECKPOINT_DIR,
    FORMAT_VERSION,
    HEAD_FILE,
    RESULTS_FILE,
    SPEC_FILE,
    AdaptedFolder,
    InvalidAdaptedFolderError,
    read_adapted_folder,
)
from ..atomic import atomic_write
from ..engine import weights_fingerprint
from ..loading import load, register_folder_kind
from ..names import parse_encoder_name
from ..resolution import ImageSizeError
from ..spec import EncoderSpec
from .methods import get_method
from .model import AdaptedEncoder, AdapterError


def is_adapted_folder(meta: dict) -> bool:
    return meta.get("kind") == "adapted"


def describe(
    model: AdaptedEncoder,
    *,
    base_name: str,
    base_fingerprint: str,
    task: str,
    label_names: list[str],
    dataset: str,
) -> dict[str, Any]:
    """The ``encoderzoo.json`` of an adapted folder."""
    trainable, total = model.parameter_counts()
    base_spec = model.encoder.spec
    spec = base_spec.to_dict()
    spec.pop("tiny")
    return {
        "format_version": FORMAT_VERSION,
        "kind": "adapted",
        "encoderzoo_version": __version__,
        "base": {
            "name": base_name,
            "spec": spec,
            "revision": base_spec.source.revision,
            "weights_fingerprint": base_fingerprint,
        },
        "method": model.method,
        "method_config": model.method_config,
        "task": task,
        "label_names": list(label_names),
        "num_outputs": model.head.out_features,
        "dataset": dataset,
        "image_size": model.spec.input_size,
        "trainable_params": trainable,
        "total_params": total,
    }


def save_adapted(model: AdaptedEncoder, folder: str | os.PathLike[str], meta: dict[str, Any]) -> Path:
    """Write the adapter files, the head and ``encoderzoo.json`` (each atomically) into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.method_record.save(model, folder)
    head = {k: v.detach().cpu().contiguous() for k, v in model.head.state_dict().items()}
    atomic_write(folder / HEAD_FILE, lambda tmp: save_file(head, tmp))
    atomic_write(folder / SPEC_FILE, lambda tmp: tmp.write_text(json.dumps(meta, indent=2) + "\n"))
    return folder


def read_meta(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """``encoderzoo.json`` of an adapted folder, checked (``read_adapted_folder`` does the whole folder)."""
    path = Path(folder) / SPEC_FILE
    if not path.is_file():
        raise AdapterError(f"{folder} has no {SPEC_FILE}: it was not written by `encoderzoo adapt`")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise AdapterError(f"{path} is not valid JSON ({err}); the folder is damaged") from err
    if not is_adapted_folder(meta):
        raise AdapterError(f"{folder} holds a saved encoder, not an adapted one (no kind='adapted' in {SPEC_FILE})")
    return meta


def load_adapted(
    folder: AdaptedFolder | str | os.PathLike[str],
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    attention: str = "auto",
    weights: str | os.PathLike[str] | None = None,
    meta: dict[str, Any] | None = None,
) -> AdaptedEncoder:
    """Rebuild an adapted encoder: load its base (by the name it was adapted from, or ``weights=PATH``), check
    the base's spec and weight fingerprint, apply the adapter and head.

    ``folder`` is checked once (``read_adapted_folder``; ``meta``: its ``encoderzoo.json`` already parsed) and
    every file is read once: the head and adapter tensors from that check, a LoRA adapter's files by peft.
    """
    if not isinstance(folder, AdaptedFolder):
        try:
            folder = read_adapted_folder(folder, meta=meta, require_results=False, read_lora=False)
        except InvalidAdaptedFolderError as err:
            raise AdapterError(str(err)) from err
    meta, saved_spec = folder.meta, folder.spec
    base_meta = meta["base"]
    base_name = base_meta["name"]
    record = get_method(meta["method"])
    text = True if record.needs_text else None  # coop and ace-lora need the base's text tower
    if parse_encoder_name(base_name).saved:
        # at the size the adapter was trained at (a no-op where the base was saved at that size): one weight read
        try:
            base = load(base_name, attention=attention, text=text, image_size=saved_spec.input_size)
        except ImageSizeError:  # another architecture cannot take that size: say so plainly
            check_architecture(
                load(base_name, attention=attention, text=text).spec, saved_spec, str(folder.path), with_size=False
            )
            raise
    else:
        base = load(saved_spec, attention=attention, weights=weights, text=text)
    check_base(base, saved_spec, base_meta["weights_fingerprint"], str(folder.path))
    model = AdaptedEncoder(base, meta["method"], meta["method_config"], meta["num_outputs"], folder=folder.path)
    record.load(model, folder)
    model.head.load_state_dict(folder.tensors[HEAD_FILE])
    return model.to(device=device, dtype=dtype).eval()


def check_architecture(spec: EncoderSpec, saved_spec: EncoderSpec, origin: str, *, with_size: bool = True) -> None:
    """Refuse a base whose architecture-defining spec fields differ from the adapter's base (``with_size=False``:
    ignoring the input size, which ``load(image_size=...)`` can still change)."""
    fields = ["architecture", "embed_dim", "pooling", "num_prefix_tokens", "patch_size"]
    if with_size:
        fields.append("input_size")
    differ = [f for f in fields if getattr(spec, f) != getattr(saved_spec, f)]

    def kwargs(s: EncoderSpec) -> dict:
        return {k: v for k, v in s.arch_kwargs.items() if with_size or k != "img_size"}

    if kwargs(spec) != kwargs(saved_spec):
        differ.append("arch_kwargs")
    if differ:
        raise AdapterError(
            f"the adapter in {origin} was trained on {saved_spec.name}, but the base given is {spec.name}, which "
            f"differs in {differ}: an adapter only fits the base it was trained on"
        )


def check_base(base: torch.nn.Module, saved_spec: EncoderSpec, fingerprint: str, origin: str) -> None:
    """Refuse a base whose architecture-defining spec fields or weights differ from the adapter's base."""
    check_architecture(base.spec, saved_spec, origin)
    actual = weights_fingerprint(base)
    if actual != fingerprint:
        raise AdapterError(
            f"the base weights of {base.spec.name} (fingerprint {actual[:12]}) are not the ones the adapter in "
            f"{origin} was trained on ({fingerprint[:12]}): another revision or file. Load the same weights "
            f"(revision {saved_spec.source.revision}) or pass weights=PATH to the right file."
        )


register_folder_kind("adapted", load_adapted)
