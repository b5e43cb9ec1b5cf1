"""Reference models built from tiny random configs, saved in each family's canonical on-disk format."""

from __future__ import annotations

from pathlib import Path

import timm
import torch
from safetensors.torch import save_file

import encoderzoo
from encoderzoo import EncoderSpec

FLOAT32_EPS = torch.finfo(torch.float32).eps  # 2**-23: the spacing of float32 numbers in [1, 2)


def sequential_layers(module: torch.nn.Module) -> int:
    """Layers with weights of their own (Linear, Conv, norms, ...): an upper bound on the roundings in series
    between an input and an output of ``module``."""
    return sum(1 for m in module.modules() if not list(m.children()) and list(m.parameters(recurse=False)))


def reorder_atol(reference: torch.Tensor, layers: int) -> float:
    """How far two float32 evaluations of the same network on the same input may differ when only the order of
    floating-point operations differs (kernel choice, memory layout, thread count, batch composition).

    First-order rounding analysis: each of ``layers`` layers in series perturbs its output by at most about one
    unit roundoff u = eps/2 of the activations' scale, so one evaluation is within ``layers * u * scale`` of the
    exact result and two evaluations within twice that: ``layers * eps * max|reference|``. Measured on the tiny
    MedViTV2 variants (130 layers) the largest difference was 5.7e-6 against this bound's 3.9e-5.
    """
    return layers * FLOAT32_EPS * float(reference.abs().max())


def randomize_(module: torch.nn.Module) -> torch.nn.Module:
    """Give every saved tensor non-trivial values (init leaves LayerScale, biases, norms near constants).

    Only state-dict entries: non-persistent buffers (EVA's constant zero k_bias) are not part of a checkpoint.
    """
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if not tensor.is_floating_point():
                continue
            if "running_var" in name:
                tensor.uniform_(0.5, 1.5)
            else:
                tensor.normal_(0.0, 0.2)
    return module.eval()


def tiny_encoder(name: str) -> encoderzoo.Encoder:
    """The tiny random variant of registry entry ``name`` with every weight non-trivial (timm's init leaves
    LayerScale at 1e-5, which would hide what an adapter does)."""
    encoder = encoderzoo.load(encoderzoo.get_spec(name).tiny_variant(), pretrained=False)
    randomize_(encoder.trunk)
    if encoder.proj is not None:
        randomize_(encoder.proj)
    return encoder.eval()


def pixels(encoder: encoderzoo.Encoder, n: int = 2) -> torch.Tensor:
    """``n`` seeded random images at the encoder's input size."""
    size = encoder.spec.input_size
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(1))


def biomedclip_vision_cfg(spec: EncoderSpec) -> dict:
    """open_clip's ``vision_cfg`` for a timm tower as BiomedCLIP's open_clip_config.json sets it."""
    return dict(
        timm_model_name=spec.architecture,
        timm_model_pretrained=False,
        timm_pool="",
        timm_proj="linear",
        image_size=spec.input_size,
    )


def timm_reference(spec: EncoderSpec, folder: Path) -> tuple[torch.nn.Module, Path]:
    """A timm model as published under timm/ on the Hub: model.safetensors in timm layout."""
    model = timm.create_model(spec.architecture, pretrained=False, num_classes=0, **spec.arch_kwargs)
    randomize_(model)
    path = folder / "model.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return model, path


def dinov2_sizes(spec: EncoderSpec) -> dict:
    """The transformers Dinov2 config sizes of a (tiny) ViT spec: image, patch, width, depth, heads."""
    kw = spec.arch_kwargs
    return {
        "image_size": kw["img_size"],
        "patch_size": spec.patch_size,
        "hidden_size": kw["embed_dim"],
        "num_hidden_layers": kw["depth"],
        "num_attention_heads": kw["num_heads"],
    }


def dinov2_hf_reference(spec: EncoderSpec, folder: Path):
    """transformers Dinov2Model as RAD-DINO is published: save_pretrained's model.safetensors."""
    from transformers import Dinov2Config, Dinov2Model

    config = Dinov2Config(
        **dinov2_sizes(spec), intermediate_size=4 * spec.arch_kwargs["embed_dim"], layerscale_value=1e-5
    )
    model = randomize_(Dinov2Model(config))
    model.save_pretrained(folder)
    return model, folder / "model.safetensors"


def siglip_hf_reference(spec: EncoderSpec, folder: Path):
    """transformers SiglipModel (vision + text) as MedSigLIP is published."""
    from transformers import SiglipConfig, SiglipModel

    kw = spec.arch_kwargs
    vision = dict(
        image_size=kw["img_size"],
        patch_size=spec.patch_size,
        hidden_size=kw["embed_dim"],
        num_hidden_layers=kw["depth"],
        num_attention_heads=kw["num_heads"],
        intermediate_size=int(kw["embed_dim"] * kw["mlp_ratio"]),
    )
    text = dict(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        vocab_size=128,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    model = randomize_(SiglipModel(SiglipConfig(vision_config=vision, text_config=text)))
    model.save_pretrained(folder)
    return model, folder / "model.safetensors"


def open_clip_reference(spec: EncoderSpec, folder: Path):
    """open_clip CLIP with a timm vision tower, configured like BiomedCLIP's open_clip_config.json."""
    from open_clip.model import CLIP

    vision_cfg = biomedclip_vision_cfg(spec)
    text_cfg = dict(context_length=16, vocab_size=128, width=32, heads=2, layers=1)
    model = randomize_(CLIP(embed_dim=spec.proj_dim, vision_cfg=vision_cfg, text_cfg=text_cfg))
    path = folder / "open_clip_pytorch_model.bin"
    torch.save(model.state_dict(), path)
    return model, path


def natten_window_start(index: int, length: int, kernel_size: int, dilation: int) -> int:
    """First key of a query's window along one axis, by NATTEN's rule (``get_window_start`` of its CPU kernels).

    Written case by case as NATTEN states it (left border, right border with the ``length % dilation`` split,
    interior), deliberately not as the dilation-group arithmetic ``encoderzoo`` uses, so the two can disagree.
    """
    half = kernel_size // 2
    if dilation <= 1:
        start = max(index - half, 0)
        if index + half >= length:
            start += length - index - half - 1
        return start
    if index - half * dilation < 0:
        return index % dilation
    if index + half * dilation >= length:
        residue = index % dilation
        full = (length // dilation) * dilation
        extra = length - full
        if residue < extra:
            return length - extra + residue - 2 * half * dilation
        return full + residue - kernel_size * dilation
    return index - half * dilation


def natten_bias_start(index: int, length: int, kernel_size: int, dilation: int) -> int:
    """Row of the relative-position-bias table read by a query's first key (NATTEN's ``get_pb_start``)."""
    half = kernel_size // 2
    if dilation <= 1:
        start = half
        if index < half:
            start += half - index
        if index + half >= length:
            start += length - index - 1 - half
        return start
    if index - half * dilation < 0:
        return kernel_size - 1 - index // dilation
    if index + half * dilation >= length:
        return (length - index - 1) // dilation
    return half


def natten_reference_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    kernel_size: int,
    dilation: int = 1,
    rpb: torch.Tensor | None = None,
) -> torch.Tensor:
    """Independent oracle for 2D neighborhood attention: full attention over all ``H * W`` keys, masked.

    ``q, k, v``: ``(B, heads, H, W, D)``, ``q`` already scaled. Key ``t`` of a query's window (per axis) is
    ``natten_window_start + t * dilation`` and reads bias row ``natten_bias_start + t``, built in Python
    loops, one position at a time; nothing is shared with ``encoderzoo.models.neighborhood_attention``.
    """
    B, heads, H, W, D = q.shape

    def axis(length: int) -> tuple[torch.Tensor, torch.Tensor]:
        allowed = torch.zeros(length, length, dtype=torch.bool)
        bias_row = torch.zeros(length, length, dtype=torch.long)
        for i in range(length):
            start = natten_window_start(i, length, kernel_size, dilation)
            bias_start = natten_bias_start(i, length, kernel_size, dilation)
            for t in range(kernel_size):
                allowed[i, start + t * dilation] = True
                bias_row[i, start + t * dilation] = bias_start + t
        return allowed, bias_row

    allowed_h, bias_h = axis(H)
    allowed_w, bias_w = axis(W)
    logits = torch.einsum("bnhwd,bnxyd->bnhwxy", q, k)  # query (h, w), key (x, y)
    if rpb is not None:
        logits = logits + rpb[:, bias_h[:, None, :, None], bias_w[None, :, None, :]].to(logits.device)
    mask = (allowed_h[:, None, :, None] & allowed_w[None, :, None, :]).to(logits.device)
    logits = logits.masked_fill(~mask, float("-inf"))
    weights = logits.reshape(B, heads, H, W, H * W).softmax(-1).reshape(logits.shape)
    return torch.einsum("bnhwxy,bnxyd->bnhwd", weights, v)
