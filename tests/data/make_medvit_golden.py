"""Write ``medvit_v2_golden.safetensors``: upstream MedViTV2's own forward pass on fixed random weights.

The expected values come from upstream's code, never from ``encoderzoo``: this script takes ``MedViT.py`` and
``fasterkan.py`` from github.com/Omid-Nejati/MedViTV2 at the pinned commit at run time (nothing of upstream is
stored in this project), builds a tiny ``MedViT`` that still has every block type (LFP with 2 and 5 heads,
GFP with spatial reduction 4, 2 and 1, FasterKAN), fills it with seeded random weights, and records the input,
the weights, every block's output (float64) and the final features and logits.

Upstream imports NATTEN, which cannot be installed here (0.17 is tied to torch 2.5). A stand-in ``natten``
module is put in ``sys.modules`` first: its ``NeighborhoodAttention2D`` has NATTEN 0.17's parameters and its
unfused forward (``qkv -> (B, heads, H, W, D)``, scaled q, attention, ``proj``), and its attention is
``tests.helpers.natten_reference_attention``, a masked full attention written from NATTEN's window and
bias-index rules, independent of ``encoderzoo.models.neighborhood_attention``. ``einops`` must be installed
(``pip install einops``; upstream uses it, encoderzoo does not).

Usage (from the repository root):
    python tests/data/make_medvit_golden.py                        # clones upstream from GitHub
    python tests/data/make_medvit_golden.py --upstream PATH_TO_GIT_DIR  # an existing clone or mirror
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.helpers import natten_reference_attention  # noqa: E402

UPSTREAM_URL = "https://github.com/Omid-Nejati/MedViTV2"
UPSTREAM_COMMIT = "8d54f665114c42e24b335c72fb20691c7977c320"
OUT = Path(__file__).resolve().parent / "medvit_v2_golden.safetensors"

# The smallest MedViT with every block type: stage 0 one LFP (16 ch, 2 heads of 8), stage 1 one GFP (40 ch:
# 32 E-MHSA + 8 MHCA, sr 4), stage 2 LFP, LFP, GFP (5 heads, sr 2), stage 3 one GFP (sr 1). 112 px leaves a
# 28x28 map in stage 0 (7x7 windows that shift at the borders) and the 7x7 minimum in stage 2.
CONFIG = dict(
    stem_chs=[8, 8, 16],
    depths=[1, 1, 3, 1],
    dims=[16, 40, 40, 40],
    head_dim=8,
    num_classes=5,
)
IMAGE_SIZE = 112
BATCH = 2
SEED = 20251026


class StandInNeighborhoodAttention2D(nn.Module):
    """NATTEN 0.17 ``NeighborhoodAttention2D``'s parameters and unfused forward, on the reference attention."""

    def __init__(
        self,
        dim,
        num_heads,
        kernel_size,
        dilation=1,
        is_causal=False,
        rel_pos_bias=False,
        qkv_bias=True,
        qk_scale=None,
        attn_drop=0.0,
        proj_drop=0.0,
    ):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = qk_scale or self.head_dim**-0.5
        self.kernel_size = kernel_size
        self.dilation = dilation or 1  # upstream passes dilation=None
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        if rel_pos_bias:
            self.rpb = nn.Parameter(torch.zeros(num_heads, 2 * kernel_size - 1, 2 * kernel_size - 1))
        else:
            self.register_parameter("rpb", None)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x):
        B, H, W, C = x.shape
        qkv = self.qkv(x).reshape(B, H, W, 3, self.num_heads, self.head_dim).permute(3, 0, 4, 1, 2, 5)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        out = natten_reference_attention(q, k, v, self.kernel_size, self.dilation, self.rpb)
        return self.proj_drop(self.proj(out.permute(0, 2, 3, 1, 4).reshape(B, H, W, C)))


def install_natten_stand_in() -> None:
    natten = types.ModuleType("natten")
    natten.NeighborhoodAttention2D = StandInNeighborhoodAttention2D
    natten.context = types.SimpleNamespace()  # upstream checks hasattr(natten, "context") for NATTEN >= 0.17
    sys.modules["natten"] = natten


def upstream_sources(upstream: str | None, folder: Path) -> None:
    """Write MedViT.py and fasterkan.py at UPSTREAM_COMMIT into ``folder``."""
    if upstream is None:
        upstream = str(folder / "clone")
        subprocess.run(["git", "clone", "--quiet", "--filter=blob:none", UPSTREAM_URL, upstream], check=True)
    for name in ("MedViT.py", "fasterkan.py"):
        text = subprocess.run(
            ["git", "-C", upstream, "show", f"{UPSTREAM_COMMIT}:{name}"], check=True, capture_output=True, text=True
        ).stdout
        (folder / name).write_text(text)


def randomize(model: nn.Module, generator: torch.Generator) -> None:
    """Seeded weights that make every term matter: no zero biases, no unit norms, non-trivial BN statistics.

    Values are rounded to float16 (the golden file stores them so, to stay small) and used in float64.
    """
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point() or name.endswith("rbf.grid"):
                continue  # the KAN grid keeps upstream's linspace(-2, 2, 8)
            if name.endswith("running_var"):
                value = torch.rand(tensor.shape, generator=generator) + 0.5
            elif name.endswith(("norm.weight", "norm1.weight", "norm2.weight", "layernorm.weight")) or (
                tensor.ndim == 1 and "conv.conv" in name and name.endswith("weight")
            ):
                value = torch.rand(tensor.shape, generator=generator) + 0.5
            elif tensor.ndim >= 2:
                fan_in = tensor[0].numel()
                value = torch.randn(tensor.shape, generator=generator) * fan_in**-0.5
            else:
                value = torch.randn(tensor.shape, generator=generator) * 0.2
            if name.endswith(".rpb"):
                value = torch.randn(tensor.shape, generator=generator)  # large enough to change the attention
            tensor.copy_(value.half().float())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upstream", help="a clone or mirror of MedViTV2 (default: clone from GitHub)")
    args = parser.parse_args()
    torch.manual_seed(0)
    install_natten_stand_in()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        upstream_sources(args.upstream, folder)
        sys.path.insert(0, str(folder))
        import MedViT as upstream  # noqa: N813

        model = upstream.MedViT(**CONFIG).eval()
    generator = torch.Generator().manual_seed(SEED)
    randomize(model, generator)
    image = (torch.rand(BATCH, 3, IMAGE_SIZE, IMAGE_SIZE, generator=generator) * 2 - 1).half().double()
    # float64: with random weights the network amplifies float32 rounding (1e-4 relative after six blocks,
    # measured), which would hide small real differences; in float64 ours and upstream agree to ~1e-12.
    model.double()

    blocks: dict[str, torch.Tensor] = {}
    for index, block in enumerate(model.features):
        block.register_forward_hook(lambda _m, _i, out, index=index: blocks.__setitem__(f"block.{index}", out))
    with torch.no_grad():
        norm_out = {}
        model.norm.register_forward_hook(lambda _m, _i, out: norm_out.__setitem__("features", out))
        logits = model(image)

    # float16 holds the seeded values exactly; the KAN grid (upstream's linspace) is kept in float64
    tensors = {
        f"weight.{k}": v if k.endswith("rbf.grid") else v.half()
        for k, v in model.state_dict().items()
        if v.is_floating_point()
    }
    assert all(torch.equal(model.state_dict()[k[7:]], v.double()) for k, v in tensors.items())
    tensors["input"] = image.half()
    # every block's output, averaged over space (enough to say which block first disagrees)
    tensors.update({f"output.{k}.mean_hw": v.mean((2, 3)) for k, v in blocks.items()})
    tensors["output.features"] = norm_out["features"]  # forward_features: the final BN'd map
    tensors["output.logits"] = logits
    metadata = {
        "upstream": f"{UPSTREAM_URL} @ {UPSTREAM_COMMIT} (MedViT.py, fasterkan.py)",
        "natten": "stand-in: NATTEN 0.17 NeighborhoodAttention2D parameters and unfused forward, "
        "tests.helpers.natten_reference_attention",
        "config": json.dumps(CONFIG),
        "image_size": str(IMAGE_SIZE),
        "seed": str(SEED),
        "dtype": "outputs computed in float64; weights and input are float16 values",
        "generator": "python tests/data/make_medvit_golden.py",
        "torch": torch.__version__,
    }
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(OUT), metadata=metadata)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1024:.0f} KiB, {len(tensors)} tensors)")
    print(f"logits {logits.tolist()}")


if __name__ == "__main__":
    main()
