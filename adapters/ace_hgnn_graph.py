"""ACE-HGNN on torch-geometric: message passing over the sparse top-k incidence (optional extra ``graph``).

The same computation as ``AceHgnn`` (see ``adapters/ace_hgnn.py``), written as a hypergraph: the ``B`` images
become one disjoint graph of ``B * M`` nodes and ``B * M`` hyperedges (hyperedge ``i`` of an image belongs to
node ``i``). The incidence holds, per hyperedge, the node itself (weight 1), its top-k neighbours (softmax
weights, computed per hyperedge with ``torch_geometric.utils.softmax``) and, for a patch hyperedge chosen by
the global row, the global node (the global row's weight). Two ``MessagePassing`` steps with sum aggregation
carry node features to hyperedges and hyperedge features back to nodes, each followed by its bottleneck MLP.

Parameter names equal ``AceHgnn``'s (``edge_mlp``, ``node_mlp``), so state dicts load into either class.
"""

from __future__ import annotations

import importlib
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .ace_hgnn import AceSettings, BottleneckMLP, masked_affinity


def _geometric() -> Any:
    try:
        return importlib.import_module("torch_geometric")
    except ImportError as exc:
        raise ImportError(
            "AceHgnnGraph needs torch-geometric: pip install 'encoderzoo[graph]' "
            "(AceHgnn, the dense default, needs nothing extra)"
        ) from exc


def _weighted_sum_conv() -> type[nn.Module]:
    """A ``MessagePassing`` layer: ``out[target] = sum over edges of weight * x[source]`` (bipartite)."""
    from torch_geometric.nn import MessagePassing

    class WeightedSum(MessagePassing):
        def __init__(self) -> None:
            super().__init__(aggr="add", flow="source_to_target")

        def forward(
            self, x: torch.Tensor, edge_index: torch.Tensor, edge_weight: torch.Tensor, num_targets: int
        ) -> torch.Tensor:
            return self.propagate(edge_index, x=(x, None), edge_weight=edge_weight, size=(x.shape[0], num_targets))

        def message(self, x_j: torch.Tensor, edge_weight: torch.Tensor) -> torch.Tensor:
            return edge_weight.unsqueeze(-1) * x_j

    return WeightedSum


def sparse_incidence(
    nodes: torch.Tensor, global_affinity: torch.Tensor | None, top_k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(hyperedge, node)`` index pairs ``(2, E)`` over the flattened batch and their weights ``(E,)``."""
    from torch_geometric.utils import softmax

    B, M, _ = nodes.shape
    sim = masked_affinity(nodes, global_affinity)
    values, index = sim.topk(min(top_k, M - 1), dim=-1)  # (B, M, k)
    offset = (torch.arange(B, device=nodes.device) * M).view(B, 1, 1)
    hyperedge = (torch.arange(M, device=nodes.device).view(1, M, 1) + offset).expand_as(index)
    member = index + offset
    keep = torch.isfinite(values)  # rows with fewer than k candidates picked masked entries: not members
    hyperedge, member, values = hyperedge[keep], member[keep], values[keep]
    weight = softmax(values, hyperedge, num_nodes=B * M)  # per-hyperedge softmax over its top-k members
    # the global row's picks also put the global node into the picked patches' hyperedges, same weight
    from_global = hyperedge % M == 0
    back_edge, back_member = member[from_global], hyperedge[from_global]
    loops = torch.arange(B * M, device=nodes.device)
    edges = torch.stack([torch.cat([loops, hyperedge, back_edge]), torch.cat([loops, member, back_member])])
    weights = torch.cat([weight.new_ones(B * M), weight, weight[from_global]])
    return edges, weights.to(nodes.dtype)


class AceHgnnGraph(nn.Module):
    """ACE-HGNN through torch-geometric message passing; same interface and parameters as ``AceHgnn``."""

    def __init__(self, dim: int, settings: AceSettings | None = None) -> None:
        super().__init__()
        _geometric()
        self.settings = settings or AceSettings()
        self.dim = dim
        self.edge_mlp = BottleneckMLP(dim, self.settings.hidden)
        self.node_mlp = BottleneckMLP(dim, self.settings.hidden)
        conv = _weighted_sum_conv()
        self.to_hyperedges = conv()
        self.to_nodes = conv()

    def enhance_tokens(self, nodes: torch.Tensor, global_affinity: torch.Tensor | None = None) -> torch.Tensor:
        """Every enhanced node, L2-normalized: ``(B, 1 + N, D)``."""
        edges, weights = sparse_incidence(nodes, global_affinity, self.settings.top_k)  # validates the shapes
        B, M, D = nodes.shape
        flat = nodes.reshape(B * M, D)
        hyper = self.edge_mlp(self.to_hyperedges(flat, edges.flip(0), weights, B * M))  # nodes -> hyperedges
        context = self.node_mlp(self.to_nodes(hyper, edges, weights, B * M))  # hyperedges -> nodes
        return F.normalize(context, dim=-1).reshape(B, M, D)

    def forward(self, nodes: torch.Tensor, global_affinity: torch.Tensor | None = None) -> torch.Tensor:
        """The enhanced global node, L2-normalized: ``(B, D)``."""
        return self.enhance_tokens(nodes, global_affinity)[:, 0]

    def extra_repr(self) -> str:
        return f"dim={self.dim}, top_k={self.settings.top_k}, hidden={self.settings.hidden}"
