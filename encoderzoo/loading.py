"""``load()``: one call from a name to a ready ``Encoder``; ``save_pretrained()`` for its round trip."""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors.torch import save_file

from . import __version__
from .atomic import atomic_write
from .attention import resolve_backend
from .controls import PixelEncoder, load_control
from .convert import convert
from .encoder import Encoder
from .errors import WeightsNotFoundError
from .names import HF_HUB_PREFIX, LOCAL_DIR_PREFIX, EncoderRef, parse_encoder_name
from .registry import get_spec
from .resolution import at_image_size, fit_state_to_size
from .revisions import at_revision
from .spec import EncoderSpec
from .text.attach import canonical_text, saved_text_state, tokenizer_source
from .text.convert import convert_text
from .text.tokenizer import SAVED_SUBFOLDER
from .weights import download_from_hub, read_state_dict, resolve_weight_file, snapshot_from_hub

if TYPE_CHECKING:
    from .adapters.model import AdaptedEncoder

SPEC_FILE = "encoderzoo.json"
WEIGHTS_FILE = "model.safetensors"
__all__ = ["HF_HUB_PREFIX", "LOCAL_DIR_PREFIX", "load", "save_pretrained"]


def load(
    name: str | EncoderSpec,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    attention: str = "auto",
    weights: str | os.PathLike[str] | None = None,
    pretrained: bool = True,
    image_size: int | None = None,
    text: bool | None = None,
    tokenizer: str | os.PathLike[str] | None = None,
    revision: str | None = None,
) -> Encoder | AdaptedEncoder | PixelEncoder:
    """Build an encoder and load its weights.

    Args:
        name: a registry name (``dinov2-base``), ``hf-hub:org/repo[@revision]`` or ``local-dir:PATH`` for
            encoders saved by ``save_pretrained`` or adapted by ``encoderzoo adapt`` (those return an
            ``encoderzoo.adapters.AdaptedEncoder``; ``weights=`` then names the base's weight file), or an
            ``EncoderSpec``; or a control: ``random:NAME`` (NAME's architecture, seeded random initialisation)
            or ``pixels[@SIZE]`` (a ``PixelEncoder``). ``encoderzoo.names`` holds the grammar.
        device, dtype: where the returned encoder lives (bf16 recommended on GPU for DINOv3).
        attention: ``auto`` | ``sdpa`` | ``xformers`` | ``math``.
        weights: a local file in the entry's canonical source format, instead of fetching it.
        pretrained: ``False`` gives random weights, on request only; a failed load never does.
        image_size: run at this input size instead of the spec's (``None``). ViT position embeddings are
            resampled as each family's upstream does at inference (``encoderzoo.resolution``); a size that is
            not a multiple of the patch size (or that the network's strides cannot take) is an ``ImageSizeError``.
            ``encoder.spec.input_size`` is then ``image_size``, so it reaches caches, results and saved folders.
        text: image-text entries (biomedclip, medsiglip-448): ``True`` also loads the text tower from the same
            checkpoint (``encode_text``, ``similarity``); ``None`` (default) loads it only where a saved encoder
            folder holds one; ``False`` never. ``True`` on an image-only entry is a ``NoTextTowerError``.
        tokenizer: a local folder with the tokenizer files, instead of fetching them from the spec's pinned
            tokenizer repository (read on the first ``tokenize`` / ``encode_text`` call).
        revision: registry entries only: read the weights at this commit, branch or tag of the entry's Hub
            repository instead of the pinned one (``encoderzoo.revisions.at_revision``); recorded in
            ``encoder.spec.source.revision``, so caches, results and adapted folders carry it. For ``hf-hub:``
            names write ``hf-hub:org/repo@REVISION``.

    Weights are fetched through huggingface_hub at the spec's revision (HF_HUB_OFFLINE and the local cache
    are honoured), converted into the timm module and loaded strictly.
    """
    backend = resolve_backend(attention, device)
    ref = parse_encoder_name(name) if isinstance(name, str) else None
    if ref is not None and ref.is_control:
        if revision is not None:
            raise ValueError(f"{name!r} is a control (no pretrained weights); revision= does not apply")
        return load_control(
            ref,
            device=device,
            dtype=dtype,
            attention=backend,
            weights=weights,
            pretrained=pretrained,
            image_size=image_size,
            text=text,
            tokenizer=tokenizer,
        )
    if revision is not None and ref is not None and ref.saved:
        raise ValueError(f"revision= applies to registry entries; for {name!r} write hf-hub:org/repo@REVISION")
    saved = _saved_meta(ref) if ref is not None and ref.saved else None
    if saved is not None and saved.get("kind") is not None:  # a folder another package knows how to rebuild
        kind = saved["kind"]
        if not pretrained:
            raise ValueError(f"{name!r} is an {kind} encoder; pretrained=False does not apply")
        if image_size is not None:
            raise ValueError(f"{name!r} is an {kind} encoder: it runs at the size it was {kind} at")
        if text or tokenizer is not None:
            raise ValueError(f"{name!r} is an {kind} encoder; text towers of {kind} encoders are not supported")
        loader = folder_loader(kind, str(name))
        return loader(_whole_folder(ref), device=device, dtype=dtype, attention=attention, weights=weights, meta=saved)
    if ref is not None and ref.saved:
        if weights is not None or not pretrained:
            raise ValueError(f"{name!r} carries its own weights; weights= and pretrained=False do not apply")
        if saved is None:
            raise WeightsNotFoundError(
                f"{ref.target} has no {SPEC_FILE}: it was not saved by encoderzoo.save_pretrained or encoderzoo adapt"
            )
        spec, state, origin = _read_saved(ref, saved)
        with_text, state = saved_text_state(spec, state, text, origin)
        weights_size = spec.input_size  # saved weights are already at the saved spec's size
    else:
        registered = name if isinstance(name, EncoderSpec) else get_spec(ref.target)  # type: ignore[union-attr,arg-type]
        spec = at_revision(registered, revision)
        at_image_size(spec, image_size)  # a size the network cannot take fails before any download
        with_text = canonical_text(spec, text)
        state, origin = _read_canonical(spec, weights, with_text) if pretrained else (None, "")
        weights_size = spec.native_input_size or spec.input_size
    target = at_image_size(spec, image_size)
    encoder = Encoder(target, attention=backend, text=with_text)
    if encoder.text is not None:
        encoder.text.tokenizer_source = tokenizer_source(name, spec, tokenizer)
    elif tokenizer is not None:
        raise ValueError("tokenizer= applies to encoders loaded with their text tower (text=True)")
    if state is not None:
        encoder.load_converted(fit_state_to_size(state, spec, weights_size, encoder.trunk), origin)
    return encoder.to(device=device, dtype=dtype).eval()


def _read_canonical(spec: EncoderSpec, weights: str | os.PathLike[str] | None, text: bool = False) -> tuple[dict, str]:
    if weights is not None:
        path, checksum = Path(weights), None
    else:
        path, checksum = resolve_weight_file(spec), spec.source.sha256
    state = read_state_dict(path, expected_sha256=checksum)
    converted = convert(state, spec)
    if text:  # the text tower lives in the same canonical file
        converted.update(convert_text(state, spec))
    return converted, str(path)


def _saved_meta(ref: EncoderRef) -> dict | None:
    """``encoderzoo.json`` of a ``local-dir:`` / ``hf-hub:`` name (a saved or an adapted encoder), read once;
    ``None`` for a local folder without one."""
    if ref.kind == "local-dir":
        spec_path = Path(ref.target or "").expanduser() / SPEC_FILE
        if not spec_path.is_file():
            return None
    else:
        spec_path = download_from_hub(ref.target or "", SPEC_FILE, ref.revision or "main")
    return json.loads(spec_path.read_text())


FolderLoader = Callable[..., torch.nn.Module]
_FOLDER_LOADERS: dict[str, FolderLoader] = {}
PLUGIN_PACKAGES = ("encoderzoo.adapters",)
"""Packages that register folder kinds when imported (``encoderzoo.adapters``: ``kind: "adapted"``). They are
imported by name the first time a folder of an unknown kind is met, so this core module never imports them."""


def register_folder_kind(kind: str, loader: FolderLoader) -> None:
    """``load("local-dir:DIR")`` / ``load("hf-hub:...")`` of a folder whose ``encoderzoo.json`` says ``kind`` calls
    ``loader(folder, device=, dtype=, attention=, weights=, meta=)`` (``meta``: that file, already parsed)."""
    _FOLDER_LOADERS[kind] = loader


def folder_loader(kind: str, name: str) -> FolderLoader:
    if kind not in _FOLDER_LOADERS:
        for package in PLUGIN_PACKAGES:
            importlib.import_module(package)
    if kind not in _FOLDER_LOADERS:
        raise WeightsNotFoundError(f"{name}: its {SPEC_FILE} says kind={kind!r}, which this encoderzoo cannot load")
    return _FOLDER_LOADERS[kind]


def _whole_folder(ref: EncoderRef) -> Path:
    """The local folder of a folder-kind encoder: ``hf-hub:`` repositories are fetched whole (adapter files, head,
    card); the base weights are never in them and are loaded by the base's own name."""
    if ref.kind == "local-dir":
        return Path(ref.target or "").expanduser()
    return snapshot_from_hub(ref.target or "", ref.revision or "main")


def _read_saved(ref: EncoderRef, meta: dict) -> tuple[EncoderSpec, dict, str]:
    """The spec (from ``meta``, already read) and the weights of the saved encoder ``ref``."""
    if ref.kind == "local-dir":
        weights_path = Path(ref.target or "").expanduser() / WEIGHTS_FILE
    else:
        weights_path = download_from_hub(ref.target or "", WEIGHTS_FILE, ref.revision or "main")
    spec = EncoderSpec.from_dict(meta["spec"])
    return spec, read_state_dict(weights_path), str(weights_path)


def save_pretrained(encoder: Encoder, folder: str | os.PathLike[str]) -> Path:
    """Write ``encoderzoo.json`` + ``model.safetensors`` so ``load("local-dir:FOLDER")`` rebuilds the encoder.

    Each file is written to a temporary name and renamed, so a crash never leaves a half-written file.
    An encoder with a text tower also gets a byte-for-byte copy of its tokenizer files in ``FOLDER/tokenizer``.
    """
    folder = Path(folder)
    text_tokenizer = encoder.text.tokenizer if encoder.text is not None else None  # fails before anything is written
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in encoder.state_dict().items()}
    meta = {"format_version": 1, "encoderzoo_version": __version__, "spec": encoder.spec.to_dict()}
    atomic_write(folder / WEIGHTS_FILE, lambda tmp: save_file(state, tmp, metadata={"encoder": encoder.spec.name}))
    if text_tokenizer is not None:
        text_tokenizer.save(folder / SAVED_SUBFOLDER)
    atomic_write(folder / SPEC_FILE, lambda tmp: tmp.write_text(json.dumps(meta, indent=2) + "\n"))
    return folder
