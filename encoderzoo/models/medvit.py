"""MedViTV2 ("MedViT-KAN"), re-implemented in plain PyTorch with upstream's module names and shapes.

Upstream: github.com/Omid-Nejati/MedViTV2 (MIT), "Medical Image Classification with KAN-Integrated
Transformers and Dilated Neighborhood Attention" (Manzari et al., 2025). Upstream needs NATTEN 0.17 (tied to
torch 2.5); here neighborhood attention is ``neighborhood_attention.NeighborhoodAttention2D``.

Faithfulness notes (the checkpoints were trained with these, so they are kept as they are):
- LFP blocks hand the ``(B, C, H, W)`` map to neighborhood attention with ``reshape(B, H, W, C)``, a reshape,
  not a permute, and reshape the result back the same way;
- GFP blocks feed FasterKAN with ``reshape(-1, C)`` of the ``(B, C, H, W)`` map, again a plain reshape;
- E-MHSA's spatial reduction averages ``sr**2`` consecutive tokens (``AvgPool1d`` over the flattened map);
- GFP builds a LocalityFeedForward (``conv``) that its forward never calls; its weights are in every
  checkpoint, so the module is kept.
"""

from __future__ import annotations

from functools import partial

import torch
from timm.layers import DropPath
from timm.models import register_model
from torch import nn

from ..attention import _Kernel, attend
from .fasterkan import FasterKAN
from .neighborhood_attention import NeighborhoodAttention2D

NORM_EPS = 1e-5
BatchNorm2d = partial(nn.BatchNorm2d, eps=NORM_EPS)


def make_divisible(value: float, divisor: int) -> int:
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class ConvBNReLU(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.norm = BatchNorm2d(out_channels)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class PatchEmbed(nn.Module):
    """2x2 average pool (stride 2) and/or a 1x1 conv + BN when the width changes; identity otherwise."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        changes = stride == 2 or in_channels != out_channels
        self.avgpool = (
            nn.AvgPool2d(2, stride=2, ceil_mode=True, count_include_pad=False) if stride == 2 else nn.Identity()
        )
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False) if changes else nn.Identity()
        self.norm = BatchNorm2d(out_channels) if changes else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(self.avgpool(x)))


class MHCA(nn.Module):
    """Multi-head convolutional attention: grouped 3x3 conv, BN, ReLU, 1x1 projection."""

    def __init__(self, channels: int, head_dim: int) -> None:
        super().__init__()
        self.group_conv3x3 = nn.Conv2d(channels, channels, 3, padding=1, groups=channels // head_dim, bias=False)
        self.norm = BatchNorm2d(channels)
        self.act = nn.ReLU(inplace=True)
        self.projection = nn.Conv2d(channels, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(self.act(self.norm(self.group_conv3x3(x))))


class HardSigmoid(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.relu6(x + 3.0) / 6.0


class HardSwish(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (torch.nn.functional.relu6(x + 3.0) / 6.0)


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        hidden = channels // reduction
        self.fc = nn.Sequential(
            nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels), HardSigmoid()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(self.avg_pool(x).flatten(1))[:, :, None, None]


class LocalityFeedForward(nn.Module):
    """x + [1x1 conv, BN, h-swish, depthwise kxk, BN, h-swish, squeeze-excite, 1x1 conv, BN](x)."""

    def __init__(self, channels: int, kernel_size: int, expand_ratio: float, reduction: int) -> None:
        super().__init__()
        hidden = int(channels * expand_ratio)
        self.conv = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False),
            nn.BatchNorm2d(hidden),
            HardSwish(),
            nn.Conv2d(hidden, hidden, kernel_size, padding=kernel_size // 2, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            HardSwish(),
            SqueezeExcite(hidden, reduction),
            nn.Conv2d(hidden, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x)


class LFP(nn.Module):
    """Local feature perception: neighborhood attention (k=7, relative position bias) + locality feed-forward."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        path_dropout: float,
        head_dim: int,
        mlp_ratio: float = 3,
    ) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(in_channels, out_channels, stride)
        self.norm1 = BatchNorm2d(out_channels)
        self.attn = NeighborhoodAttention2D(out_channels, out_channels // head_dim, kernel_size=7, rel_pos_bias=True)
        self.attention_path_dropout = DropPath(path_dropout)
        self.conv = LocalityFeedForward(out_channels, kernel_size, mlp_ratio, reduction=out_channels)
        self.norm2 = BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        b, c, h, w = x.shape
        attended = self.attn(self.norm1(x).reshape(b, h, w, c))  # upstream reshapes, it does not permute
        x = x + self.attention_path_dropout(attended.reshape(b, c, h, w))
        return x + self.conv(self.norm2(x))


class EfficientMHSA(_Kernel, nn.Module):
    """Multi-head self-attention whose keys/values are average-pooled by ``sr_ratio**2`` tokens (+ BN)."""

    def __init__(self, dim: int, head_dim: int, sr_ratio: int) -> None:
        super().__init__()
        self.num_heads = dim // head_dim
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        self.sr_ratio = sr_ratio
        if sr_ratio > 1:
            self.sr = nn.AvgPool1d(sr_ratio**2, stride=sr_ratio**2)
            self.norm = nn.BatchNorm1d(dim, eps=NORM_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        kv = self.norm(self.sr(x.transpose(1, 2))).transpose(1, 2) if self.sr_ratio > 1 else x

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(B, -1, self.num_heads, C // self.num_heads).transpose(1, 2)

        out = attend(heads(self.q(x)), heads(self.k(kv)), heads(self.v(kv)), self.backend)
        return self.proj(out.transpose(1, 2).reshape(B, N, C))


class GFP(nn.Module):
    """Global feature perception: efficient MHSA and multi-head convolutional attention side by side, then KAN."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        path_dropout: float,
        stride: int,
        sr_ratio: int,
        head_dim: int,
        mix_block_ratio: float = 0.75,
        mlp_ratio: float = 2,
    ) -> None:
        super().__init__()
        mhsa_channels = make_divisible(int(out_channels * mix_block_ratio), 32)
        mhca_channels = out_channels - mhsa_channels
        self.patch_embed = PatchEmbed(in_channels, mhsa_channels, stride)
        self.norm1 = BatchNorm2d(mhsa_channels)
        self.e_mhsa = EfficientMHSA(mhsa_channels, head_dim, sr_ratio)
        self.mhsa_path_dropout = DropPath(path_dropout * mix_block_ratio)
        self.projection = PatchEmbed(mhsa_channels, mhca_channels)
        self.mhca = MHCA(mhca_channels, head_dim)
        self.mhca_path_dropout = DropPath(path_dropout * (1 - mix_block_ratio))
        self.norm2 = BatchNorm2d(out_channels)
        self.conv = LocalityFeedForward(out_channels, 3, mlp_ratio, reduction=out_channels)  # unused, see module doc
        self.mlp_path_dropout = DropPath(path_dropout)
        self.kan = FasterKAN([out_channels, int(out_channels * mlp_ratio), out_channels])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        B, C, H, W = x.shape
        tokens = self.norm1(x).flatten(2).transpose(1, 2)
        x = x + self.mhsa_path_dropout(self.e_mhsa(tokens)).transpose(1, 2).reshape(B, C, H, W)
        out = self.projection(x)
        x = torch.cat([x, out + self.mhca_path_dropout(self.mhca(out))], dim=1)
        out = self.norm2(x)
        mixed = self.kan(out.reshape(-1, out.shape[1])).reshape(out.shape)  # upstream reshapes, not permutes
        return x + self.mlp_path_dropout(mixed)


class MedViTV2(nn.Module):
    """MedViTV2 backbone with timm's interface (``forward_features``, ``forward_head``, ``num_features``)."""

    def __init__(
        self,
        stem_chs=(64, 32, 64),
        depths=(2, 2, 6, 2),
        dims=(64, 128, 320, 512),
        path_dropout=0.1,
        strides=(1, 2, 2, 2),
        sr_ratios=(8, 4, 2, 1),
        head_dim=32,
        mix_block_ratio=0.75,
        num_classes=1000,
        global_pool="avg",
        in_chans=3,
    ) -> None:
        super().__init__()
        if global_pool != "avg" or in_chans != 3:
            raise ValueError("MedViTV2 supports global_pool='avg' and in_chans=3 only")
        if depths[2] % 3:
            raise ValueError(
                f"MedViTV2's third stage repeats [LFP, LFP, GFP]: depths[2] must be a multiple of 3, got {depths[2]}"
            )
        self.stem = nn.Sequential(
            ConvBNReLU(3, stem_chs[0], stride=2),
            ConvBNReLU(stem_chs[0], stem_chs[1], stride=1),
            ConvBNReLU(stem_chs[1], stem_chs[2], stride=1),
            ConvBNReLU(stem_chs[2], stem_chs[2], stride=2),
        )
        block_types = [
            ["LFP"] * depths[0],
            ["LFP"] * (depths[1] - 1) + ["GFP"],
            ["LFP", "LFP", "GFP"] * (depths[2] // 3),
            ["GFP"] * depths[3],
        ]
        total = sum(depths)
        drop_rates = [path_dropout * i / max(1, total - 1) for i in range(total)]  # stochastic depth ramp
        features, channels, index = [], stem_chs[-1], 0
        for stage, kinds in enumerate(block_types):
            for block, kind in enumerate(kinds):
                stride = 2 if strides[stage] == 2 and block == 0 else 1
                if kind == "LFP":
                    layer = LFP(
                        channels,
                        dims[stage],
                        kernel_size=7 if stage == 0 else 3,
                        stride=stride,
                        path_dropout=drop_rates[index],
                        head_dim=head_dim,
                    )
                else:
                    layer = GFP(
                        channels,
                        dims[stage],
                        path_dropout=drop_rates[index],
                        stride=stride,
                        sr_ratio=sr_ratios[stage],
                        head_dim=head_dim,
                        mix_block_ratio=mix_block_ratio,
                    )
                features.append(layer)
                channels, index = dims[stage], index + 1
        self.features = nn.Sequential(*features)
        self.norm = BatchNorm2d(channels)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.num_features = channels
        self.global_pool = global_pool
        self.proj_head = nn.Sequential(nn.Linear(channels, num_classes) if num_classes else nn.Identity())
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, (nn.BatchNorm2d, nn.BatchNorm1d, nn.LayerNorm)):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, (nn.Linear, nn.Conv2d)) and module.weight.requires_grad:
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.features(self.stem(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.avgpool(x).flatten(1)
        return x if pre_logits else self.proj_head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int, global_pool: str = "avg") -> None:
        self.proj_head = nn.Sequential(nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity())


SIZES = {
    "tiny": dict(depths=(2, 2, 6, 1), dims=(64, 128, 192, 384), path_dropout=0.1),
    "small": dict(depths=(2, 2, 6, 2), dims=(64, 128, 256, 512), path_dropout=0.1),
    "base": dict(depths=(2, 2, 6, 2), dims=(96, 192, 384, 768), path_dropout=0.2),
    "large": dict(depths=(2, 2, 6, 2), dims=(96, 256, 512, 1024), path_dropout=0.2),
}


def _build(size: str, pretrained: bool, **kwargs) -> MedViTV2:
    if pretrained:
        raise ValueError("load MedViTV2 weights with encoderzoo.load('medvit-v2-...'), not timm's pretrained=True")
    for key in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):
        kwargs.pop(key, None)
    return MedViTV2(**{**SIZES[size], **kwargs})


@register_model
def medvit_v2_tiny(pretrained: bool = False, **kwargs) -> MedViTV2:
    return _build("tiny", pretrained, **kwargs)


@register_model
def medvit_v2_small(pretrained: bool = False, **kwargs) -> MedViTV2:
    return _build("small", pretrained, **kwargs)


@register_model
def medvit_v2_base(pretrained: bool = False, **kwargs) -> MedViTV2:
    return _build("base", pretrained, **kwargs)


@register_model
def medvit_v2_large(pretrained: bool = False, **kwargs) -> MedViTV2:
    return _build("large", pretrained, **kwargs)
