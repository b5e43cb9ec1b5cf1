"""Reference models built from tiny random configs, saved in each family's canonical on-disk format."""

from __future__ import annotations

from pathlib import Path

import timm
import torch
from safetensors.torch import save_file

from encoderzoo import EncoderSpec


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


def timm_reference(spec: EncoderSpec, folder: Path) -> tuple[torch.nn.Module, Path]:
    """A timm model as published under timm/ on the Hub: model.safetensors in timm layout."""
    model = timm.create_model(spec.architecture, pretrained=False, num_classes=0, **spec.arch_kwargs)
    randomize_(model)
    path = folder / "model.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return model, path


def dinov2_hf_reference(spec: EncoderSpec, folder: Path):
    """transformers Dinov2Model as RAD-DINO is published: save_pretrained's model.safetensors."""
    from transformers import Dinov2Config, Dinov2Model

    kw = spec.arch_kwargs
    config = Dinov2Config(
        image_size=kw["img_size"],
        patch_size=spec.patch_size,
        hidden_size=kw["embed_dim"],
        num_hidden_layers=kw["depth"],
        num_attention_heads=kw["num_heads"],
        intermediate_size=4 * kw["embed_dim"],
        layerscale_value=1e-5,
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

    vision_cfg = dict(
        timm_model_name=spec.architecture,
        timm_model_pretrained=False,
        timm_pool="",
        timm_proj="linear",
        image_size=spec.input_size,
    )
    text_cfg = dict(context_length=16, vocab_size=128, width=32, heads=2, layers=1)
    model = randomize_(CLIP(embed_dim=spec.proj_dim, vision_cfg=vision_cfg, text_cfg=text_cfg))
    path = folder / "open_clip_pytorch_model.bin"
    torch.save(model.state_dict(), path)
    return model, path
