"""ACE-HGNN: the hypergraph context module of ACE-LoRA (icon-lab/ACE-LoRA), on the final tokens of a zoo encoder.

Not the hyperbolic GNN that shares the acronym. For one image with a global node ``x_0`` and patch tokens
``x_1..x_N`` (``M = 1 + N`` nodes, width ``D``), as in ACE-LoRA's ``CLIPLossACE_HGAT.apply_ace_hgat``:

1. **Affinity** ``S`` (``M x M``): cosine similarity of the L2-normalized patch tokens between patches; the
   global row ``S[0, 1:]`` is the head-averaged class-token-to-patch attention score of the last block (the
   pre-softmax scaled dot product ``q_cls . k_j / sqrt(d_head)``, as ACE-LoRA's patched timm attention returns
   it), or, for encoders without a class token, the cosine similarity of the pooled embedding with each patch.
   The diagonal and the global column of the patch rows are masked out.
2. **Sparse hypergraph**: per row, the ``top_k`` largest entries (fewer when the row has fewer candidates) are
   softmax-normalized; the diagonal is set to 1; the global column of each patch row copies the global row's
   weight for that patch (``A[i, 0] = A[0, i]``). Row ``i`` is hyperedge ``i``: node ``i``, its top-k neighbours
   and, when ``i`` is among the global node's top-k, the global node.
3. **node -> hyperedge -> node**: ``E = edge_mlp(A X)``, ``C = node_mlp(A^T E)``; each MLP is a bottleneck
   ``Linear(D, hidden) -> LeakyReLU(0.2) -> Linear(hidden, D)`` with Kaiming-normal weights. There is no residual
   connection: upstream's ``ResidualAdapter`` returns ``up(act(down(x)))`` only, and so do we.
4. The embedding is ``C[0]``, L2-normalized.

Only ``C[0]`` is needed, so ``AceHgnn.forward`` computes just the hyperedges that touch the global node (its own
and those of its top-k patches): ``O(B k N D)`` instead of ``O(B N^2 D)``. ``AceHgnn.enhance_tokens`` builds the
whole dense incidence and returns every enhanced token; ``adapters/ace_hgnn_graph.py`` does the same with
torch-geometric message passing over the sparse incidence. The three agree to float precision (tested against
a plain per-sample loop).

``ace_inputs(encoder, pixels)`` runs the encoder once and returns the nodes and the global row:

- **Encoders with a class token** (``num_prefix_tokens >= 1`` and ``cls``/``proj`` pooling: DINOv2, DINOv3,
  RAD-DINO, BiomedCLIP): the global node is the final class token; the global row is read by a forward hook on
  the last block's attention module, which recomputes ``q`` of the class token and ``k`` of the patch tokens
  through the module's own ``qkv`` (or ``q_proj``/``k_proj``), ``q_norm`` and ``k_norm`` submodules (so a
  peft-wrapped ``qkv`` contributes its LoRA update) and applies the block's RoPE to the patch keys exactly as
  the module does (DINOv3). Register tokens (DINOv2-reg4, DINOv3) and visual prompt tokens (``adapters.prompt``)
  are not nodes and take no part in the affinity: the patches are always the last tokens a block sees. For
  CLIP-style encoders (``pooling == "proj"``) every node is passed through the image-text projection first, as
  ACE-LoRA applies the hypergraph after ``visual.head``.
- **Encoders without a class token** (MedSigLIP's attention-pool head, CNNs, MedViTV2): the global node is the
  encoder's pooled embedding (what ``Encoder.embed`` returns) and the global row is its cosine similarity with
  the patch tokens (feature-map cells for CNNs); ``global_affinity`` is ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from timm.layers import Attention, apply_rot_embed_cat
from timm.models.eva import EvaAttention
from torch import nn

from ..adapted_folder import ADAPTER_FILE
from ..adapted_methods import MethodFacts
from ..encoder import Encoder
from ..errors import EncoderZooError
from .methods import Method, register

if TYPE_CHECKING:
    from .model import AdaptedEncoder


@dataclass(frozen=True)
class AceSettings:
    """ACE-HGNN hyperparameters (ACE-LoRA's defaults: ``--topk 5``, ``--hidden_features 128``)."""

    top_k: int = 5
    """Neighbours kept per row of the affinity (fewer when a row has fewer candidates)."""
    hidden: int = 128
    """Bottleneck width of the two MLPs."""

    def __post_init__(self) -> None:
        for name in ("top_k", "hidden"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"AceSettings.{name} must be a positive integer, got {value!r}")


class BottleneckMLP(nn.Module):
    """``Linear(dim, hidden) -> LeakyReLU(0.2) -> Linear(hidden, dim)``, Kaiming-normal weights, no residual."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.down = nn.Linear(dim, hidden)
        self.act = nn.LeakyReLU(0.2)
        self.up = nn.Linear(hidden, dim)
        nn.init.kaiming_normal_(self.down.weight)
        nn.init.kaiming_normal_(self.up.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.act(self.down(x)))


def check_nodes(nodes: torch.Tensor, global_affinity: torch.Tensor | None) -> None:
    """Validate ``nodes`` ``(B, 1 + N, D)`` and ``global_affinity`` ``(B, N)`` (or ``None``); ``ValueError``."""
    if not isinstance(nodes, torch.Tensor) or nodes.ndim != 3:
        raise ValueError("ACE-HGNN nodes must be a (B, 1 + N, D) tensor, global node first (see ace_inputs)")
    if nodes.shape[1] < 3:
        raise ValueError(
            f"ACE-HGNN needs a global node and at least 2 patch tokens, got {nodes.shape[1]} nodes in total"
        )
    if global_affinity is not None and tuple(global_affinity.shape) != (nodes.shape[0], nodes.shape[1] - 1):
        raise ValueError(
            f"global_affinity must be (B, N) = {(nodes.shape[0], nodes.shape[1] - 1)} for nodes of shape "
            f"{tuple(nodes.shape)}, got {tuple(global_affinity.shape)}"
        )


def cosine_row(nodes: torch.Tensor) -> torch.Tensor:
    """``(B, N)`` cosine similarity of the global node with each patch token (encoders without a class token)."""
    unit = F.normalize(nodes, dim=-1)
    return (unit[:, 1:] @ unit[:, 0].unsqueeze(-1)).squeeze(-1)


def masked_affinity(nodes: torch.Tensor, global_affinity: torch.Tensor | None) -> torch.Tensor:
    """``(B, M, M)`` affinity with ``-inf`` on the diagonal and on the global column of the patch rows."""
    check_nodes(nodes, global_affinity)
    if global_affinity is None:
        global_affinity = cosine_row(nodes)
    B, M, _ = nodes.shape
    unit = F.normalize(nodes[:, 1:], dim=-1)
    patch = unit @ unit.transpose(1, 2)
    top = torch.cat([global_affinity.new_zeros(B, 1), global_affinity.to(patch.dtype)], dim=1)
    rest = torch.cat([patch.new_zeros(B, M - 1, 1), patch], dim=2)
    sim = torch.cat([top.unsqueeze(1), rest], dim=1)
    mask = torch.eye(M, dtype=torch.bool, device=nodes.device)
    mask[1:, 0] = True
    return sim.masked_fill(mask, float("-inf"))


def dense_incidence(nodes: torch.Tensor, global_affinity: torch.Tensor | None, top_k: int) -> torch.Tensor:
    """The dense ``(B, M, M)`` hypergraph matrix ``A`` (row = hyperedge, column = node); see the module docstring."""
    sim = masked_affinity(nodes, global_affinity)
    M = sim.shape[-1]
    values, index = sim.topk(min(top_k, M - 1), dim=-1)
    sparse = torch.full_like(sim, float("-inf")).scatter(-1, index, values)
    weights = sparse.softmax(dim=-1)
    eye = torch.eye(M, dtype=torch.bool, device=sim.device)
    weights = weights.masked_fill(eye, 1.0)
    global_col = torch.cat([weights.new_ones(weights.shape[0], 1), weights[:, 0, 1:]], dim=1)
    return torch.cat([global_col.unsqueeze(-1), weights[:, :, 1:]], dim=2)


class AceHgnn(nn.Module):
    """ACE-HGNN over ``(B, 1 + N, D)`` nodes (global node first); ``forward`` -> ``(B, D)`` unit-norm embedding.

    Parameters: ``edge_mlp`` (node -> hyperedge) and ``node_mlp`` (hyperedge -> node), each a ``BottleneckMLP``;
    the names match ``AceHgnnGraph`` so state dicts are interchangeable.
    """

    def __init__(self, dim: int, settings: AceSettings | None = None) -> None:
        super().__init__()
        self.settings = settings or AceSettings()
        self.dim = dim
        self.edge_mlp = BottleneckMLP(dim, self.settings.hidden)
        self.node_mlp = BottleneckMLP(dim, self.settings.hidden)

    def forward(self, nodes: torch.Tensor, global_affinity: torch.Tensor | None = None) -> torch.Tensor:
        """The enhanced global node, L2-normalized: ``(B, D)``; only the hyperedges that touch it are built."""
        check_nodes(nodes, global_affinity)
        if global_affinity is None:
            global_affinity = cosine_row(nodes)
        k = self.settings.top_k
        glob, patches = nodes[:, 0], nodes[:, 1:]
        B, N, D = patches.shape
        # global row: its top-k patches and their weights
        w0, t0 = global_affinity.to(patches.dtype).topk(min(k, N), dim=-1)
        w0 = w0.softmax(dim=-1)  # (B, k0)
        sel = patches.gather(1, t0.unsqueeze(-1).expand(-1, -1, D))  # (B, k0, D)
        # rows of those patches: cosine with every other patch, top-k, softmax
        unit = F.normalize(patches, dim=-1)
        cos = F.normalize(sel, dim=-1) @ unit.transpose(1, 2)  # (B, k0, N)
        cos = cos.scatter(-1, t0.unsqueeze(-1), float("-inf"))
        wi, ti = cos.topk(min(k, N - 1), dim=-1)
        rows = torch.zeros_like(cos).scatter(-1, ti, wi.softmax(dim=-1))  # (B, k0, N)
        edge_in_patch = sel + rows @ patches + w0.unsqueeze(-1) * glob.unsqueeze(1)
        edge_in_glob = glob + (w0.unsqueeze(-1) * sel).sum(1)
        edges = self.edge_mlp(torch.cat([edge_in_glob.unsqueeze(1), edge_in_patch], dim=1))  # (B, 1 + k0, D)
        context = edges[:, 0] + (w0.unsqueeze(-1) * edges[:, 1:]).sum(1)
        return F.normalize(self.node_mlp(context), dim=-1)

    def enhance_tokens(self, nodes: torch.Tensor, global_affinity: torch.Tensor | None = None) -> torch.Tensor:
        """Every enhanced node, L2-normalized: ``(B, 1 + N, D)``, through the whole dense incidence."""
        A = dense_incidence(nodes, global_affinity, self.settings.top_k).to(nodes.dtype)
        edges = self.edge_mlp(A @ nodes)
        return F.normalize(self.node_mlp(A.transpose(1, 2) @ edges), dim=-1)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, top_k={self.settings.top_k}, hidden={self.settings.hidden}"


# ----------------------------------------------------------------------------------------------------------------
# Reading the nodes and the class-token attention off an encoder


def has_class_token(encoder: Encoder) -> bool:
    """True when the encoder's embedding is its class token (``cls`` / ``proj`` pooling with a prefix)."""
    spec = encoder.spec
    return spec.patch_size is not None and spec.num_prefix_tokens >= 1 and spec.pooling in ("cls", "proj")


def last_attention(trunk: nn.Module) -> nn.Module:
    """The self-attention module of the trunk's last block (works through peft and prompt wrappers)."""
    found = [m for m in trunk.modules() if isinstance(m, (Attention, EvaAttention))]
    if not found:
        raise EncoderZooError(
            f"no timm self-attention module found in {type(trunk).__name__}: ACE-HGNN cannot read the class-token "
            "attention of this trunk"
        )
    return found[-1]


def _query_key(module: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``q``, ``k`` as ``(B, heads, T, head_dim)``, through the module's own (possibly LoRA-wrapped) projections."""
    B, T, _ = x.shape
    heads = module.num_heads
    if getattr(module, "qkv", None) is not None:
        qkv = module.qkv(x)
        if getattr(module, "q_bias", None) is not None:  # Eva's separate q/k/v biases (qkv has none)
            qkv = qkv + torch.cat((module.q_bias, module.k_bias, module.v_bias))
        q, k, _ = qkv.reshape(B, T, 3, heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
    else:
        q = module.q_proj(x).reshape(B, T, heads, -1).transpose(1, 2)
        k = module.k_proj(x).reshape(B, T, heads, -1).transpose(1, 2)
    return module.q_norm(q), module.k_norm(k)


class _ClassTokenAttention:
    """Forward hook on an attention module: head-averaged class-token-to-token attention scores ``(B, T)``."""

    def __init__(self) -> None:
        self.scores: torch.Tensor | None = None

    def __call__(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
        x = args[0] if args else kwargs["x"]
        rope = kwargs.get("rope", args[1] if len(args) > 1 else None)
        q, k = _query_key(module, x)
        q_cls = q[:, :, :1]
        if rope is not None:
            # as the module does: RoPE rotates the last rope.shape[-2] tokens (the patches), never prefix tokens;
            # the class-token query is a prefix token, so only the patch keys turn
            rotated = rope.shape[-2]
            half = getattr(module, "rotate_half", False)
            k = torch.cat([k[:, :, :-rotated], apply_rot_embed_cat(k[:, :, -rotated:], rope, half=half)], dim=2)
            k = k.type_as(q_cls)
        scores = (q_cls * q_cls.shape[-1] ** -0.5) @ k.transpose(-2, -1)  # (B, heads, 1, T)
        self.scores = scores.mean(dim=1).squeeze(1)


def ace_inputs(encoder: Encoder, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Run ``encoder`` once: ``nodes`` ``(B, 1 + N, D)`` (global node first) and ``global_affinity`` ``(B, N)``.

    ``D`` is ``spec.output_dim`` (CLIP-style encoders project every token). ``global_affinity`` is the last
    block's head-averaged class-token-to-patch attention score, or ``None`` for encoders without a class token,
    whose global node is their pooled embedding (``AceHgnn`` then uses its cosine similarity with the patches).
    """
    if not has_class_token(encoder):
        feats = encoder._features(pixels)
        if feats.ndim == 4:  # CNN feature map (B, C, H, W): one node per cell
            patches = feats.flatten(2).transpose(1, 2)
        else:
            patches = feats[:, encoder.spec.num_prefix_tokens :]
        glob = encoder.trunk.forward_head(feats, pre_logits=True)
        nodes = torch.cat([glob.unsqueeze(1), patches], dim=1)
        return (encoder.proj(nodes) if encoder.proj is not None else nodes), None
    hook = _ClassTokenAttention()
    handle = last_attention(encoder.trunk).register_forward_hook(hook, with_kwargs=True)
    try:
        feats = encoder._features(pixels)
    finally:
        handle.remove()
    if hook.scores is None:
        raise EncoderZooError(f"the last attention module of {encoder.spec.name} did not run; cannot read its scores")
    num_patches = feats.shape[1] - encoder.spec.num_prefix_tokens
    # patches are the last tokens the block saw (after class, register and any prompt tokens)
    affinity = hook.scores[:, -num_patches:]
    nodes = torch.cat([feats[:, :1], feats[:, encoder.spec.num_prefix_tokens :]], dim=1)
    if encoder.proj is not None:
        nodes = encoder.proj(nodes)
    return nodes, affinity


# ----------------------------------------------------------------------------------------------------------------
# The method record: ACE-HGNN on the frozen final tokens, plus a linear head


def build(encoder: Encoder, settings: AceSettings, folder: Path | None) -> AceHgnn:
    return AceHgnn(encoder.spec.output_dim, settings)


def embed(model: AdaptedEncoder, pixels: torch.Tensor) -> torch.Tensor:
    return model.adapter(*ace_inputs(model.encoder, pixels))


def frozen_features(model: AdaptedEncoder, pixels: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The nodes and the global affinity row (a ``(N, 0)`` row where the encoder has no class token)."""
    nodes, affinity = ace_inputs(model.encoder, pixels)  # CLIP-style encoders: every node projected
    return nodes, affinity if affinity is not None else nodes.new_zeros(len(nodes), 0)


def classify_features(model: AdaptedEncoder, features: tuple[torch.Tensor, ...]) -> torch.Tensor:
    nodes, affinity = features
    return model.head(model.adapter(nodes, affinity if affinity.shape[1] else None))


register(
    Method(
        name="ace-hgnn",
        settings=AceSettings,
        build=build,
        slot="ace",
        frozen_base=True,
        embed=embed,
        frozen_features=frozen_features,
        classify_features=classify_features,
        cli_options={"top_k": "top_k"},
        facts=MethodFacts(
            files=(ADAPTER_FILE,),
            card_text="ACE-HGNN: hypergraph context module (from ACE-LoRA) on the frozen final tokens, plus a "
            "linear head",
            citation="the hypergraph context enhancement of ACE-LoRA (https://github.com/icon-lab/ACE-LoRA).",
        ),
    )
)
