"""The adapted folder: what ``encoderzoo adapt --out DIR`` leaves and ``load("local-dir:DIR")`` rebuilds.

```
encoderzoo.json        base (name it was loaded by, spec, revision, weight fingerprint), method and its config,
                       task, label names, dataset, image size, parameter counts
adapter_config.json    LoRA only: peft's own layout, so plain `PeftModel.from_pretrained(timm_trunk, DIR)` works
adapter_model.safetensors
adapter.safetensors    prompts / ACE-HGNN / full fine-tuning: every trainable tensor outside the head
head.safetensors       the classification head
results.json           test metrics in the probe schema, plus the training history
README.md              the model card (when the card module is installed)
checkpoints/           training state for --resume (never pushed)
```
Base weights are never copied: the folder names its base and the base's weight fingerprint, and loading
refuses a base whose spec or fingerprint differs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .. import __version__
from ..atomic import atomic_write
from ..engine import weights_fingerprint
from ..spec import EncoderSpec
from .lora import ADAPTER_FILES
from .model import TEXT_METHODS, AdaptedEncoder, AdapterError, head_outputs

SPEC_FILE = "encoderzoo.json"
HEAD_FILE = "head.safetensors"
ADAPTER_FILE = "adapter.safetensors"
RESULTS_FILE = "results.json"
CHECKPOINT_DIR = "checkpoints"
FORMAT_VERSION = 1


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
    if model.method == "lora":
        from .lora import save_lora

        save_lora(model.encoder, folder)
    elif model.method != "head":
        state = model.trainable_state()
        atomic_write(folder / ADAPTER_FILE, lambda tmp: save_file(state, tmp, metadata={"method": model.method}))
    head = {k: v.detach().cpu().contiguous() for k, v in model.head.state_dict().items()}
    atomic_write(folder / HEAD_FILE, lambda tmp: save_file(head, tmp))
    atomic_write(folder / SPEC_FILE, lambda tmp: tmp.write_text(json.dumps(meta, indent=2) + "\n"))
    return folder


def read_meta(folder: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(folder) / SPEC_FILE
    if not path.is_file():
        raise AdapterError(f"{folder} has no {SPEC_FILE}: it was not written by `encoderzoo adapt`")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise AdapterError(f"{path} is not valid JSON ({err}); the folder is damaged") from err
    if not is_adapted_folder(meta):
        raise AdapterError(f"{folder} holds a saved encoder, not an adapted one (no kind='adapted' in {SPEC_FILE})")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise AdapterError(f"{folder} was written by a newer encoderzoo (format {meta['format_version']}); upgrade")
    return meta


def load_adapted(
    folder: str | os.PathLike[str],
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    attention: str = "auto",
    weights: str | os.PathLike[str] | None = None,
) -> AdaptedEncoder:
    """Rebuild an adapted encoder: load its base (by the name it was adapted from, or ``weights=PATH``), check
    the base's spec and weight fingerprint, apply the adapter and head."""
    from ..loading import LOCAL_DIR_PREFIX, load

    folder = Path(folder)
    meta = read_meta(folder)
    base_meta = meta["base"]
    saved_spec = EncoderSpec.from_dict({**base_meta["spec"], "tiny": {}})
    base_name = base_meta["name"]
    text = True if meta["method"] in TEXT_METHODS else None  # coop needs the base's text tower
    if base_name.startswith(LOCAL_DIR_PREFIX) or base_name.startswith("hf-hub:"):
        base = load(base_name, attention=attention, text=text)
        check_architecture(base.spec, saved_spec, str(folder), with_size=False)  # before resizing: a clear error
        if base.spec.input_size != saved_spec.input_size:  # adapted at another size: the base runs at that size
            base = load(base_name, attention=attention, text=text, image_size=saved_spec.input_size)
    else:
        base = load(saved_spec, attention=attention, weights=weights, text=text)
    check_base(base, saved_spec, base_meta["weights_fingerprint"], str(folder))
    lora_folder = None
    if meta["method"] == "lora":
        missing = [f for f in ADAPTER_FILES if not (folder / f).is_file()]
        if missing:
            raise AdapterError(f"{folder} is a LoRA adapter but lacks {missing}")
        lora_folder = folder
    model = AdaptedEncoder(base, meta["method"], meta["method_config"], meta["num_outputs"], lora_folder=lora_folder)
    if model.method not in ("head", "lora"):
        model.load_trainable_state(_read_tensors(folder / ADAPTER_FILE), str(folder / ADAPTER_FILE))
    head = _read_tensors(folder / HEAD_FILE)
    expected = head_outputs(meta["task"], len(meta["label_names"]))
    if head.get("weight") is None or head["weight"].shape[0] != expected:
        raise AdapterError(f"{folder / HEAD_FILE} does not hold a {expected}-output head for task {meta['task']}")
    model.head.load_state_dict(head)
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


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise AdapterError(f"{path} is missing: the adapted folder is incomplete")
    try:
        return load_file(str(path))
    except Exception as err:  # safetensors raises several types for damaged files
        raise AdapterError(f"{path} cannot be read ({err}); the file is damaged: re-run or re-download it") from err
