"""ACE-HGNN: the dense module, the torch-geometric module and a plain per-sample loop agree; the class-token
attention hook equals a hand computation; the label-guided InfoNCE loss drops same-label negatives."""

from __future__ import annotations

import importlib.util
import math
import sys

import pytest
import torch
import torch.nn.functional as F

import encoderzoo
from encoderzoo.adapters.ace_hgnn import AceHgnn, AceSettings, ace_inputs
from encoderzoo.adapters.ace_hgnn_graph import AceHgnnGraph
from encoderzoo.adapters.losses import label_guided_info_nce, same_label_pairs
from tests.helpers import reorder_atol, sequential_layers

TOL = 1e-5


# ---------------------------------------------------------------------------------------------------------------
# the oracle: one sample, one row at a time, in float64


def _mlp(state: dict[str, torch.Tensor], prefix: str, x: torch.Tensor) -> torch.Tensor:
    hidden = state[f"{prefix}.down.weight"].double() @ x + state[f"{prefix}.down.bias"].double()
    hidden = torch.where(hidden > 0, hidden, 0.2 * hidden)
    return state[f"{prefix}.up.weight"].double() @ hidden + state[f"{prefix}.up.bias"].double()


def oracle(
    state: dict[str, torch.Tensor], nodes: torch.Tensor, global_affinity: torch.Tensor | None, top_k: int
) -> torch.Tensor:
    """Every enhanced node ``(B, M, D)``, unit norm, computed sample by sample and row by row."""
    out = []
    for b in range(nodes.shape[0]):
        x = nodes[b].double()
        M = len(x)
        unit = torch.stack([v / v.norm() for v in x])
        weights: dict[tuple[int, int], float] = {}  # (hyperedge, node) -> weight
        for row in range(M):
            if row == 0:
                if global_affinity is None:
                    scores = (unit @ unit[0]).tolist()
                else:
                    scores = [0.0, *global_affinity[b].tolist()]
                candidates = [(scores[j], j) for j in range(1, M)]
            else:
                scores = (unit @ unit[row]).tolist()  # cosine of this row's node with every node
                candidates = [(scores[j], j) for j in range(1, M) if j != row]
            chosen = sorted(candidates, reverse=True)[:top_k]
            total = sum(math.exp(s - chosen[0][0]) for s, _ in chosen)
            for s, j in chosen:
                weights[(row, j)] = math.exp(s - chosen[0][0]) / total
            weights[(row, row)] = 1.0
        for (row, j), w in list(weights.items()):
            if row == 0 and j != 0:
                weights[(j, 0)] = w  # the global node joins the hyperedges of the patches it picked
        members: list[list[tuple[int, float]]] = [[] for _ in range(M)]  # hyperedge -> [(node, weight)]
        for (row, j), w in weights.items():
            members[row].append((j, w))
        edges = [_mlp(state, "edge_mlp", sum(w * x[j] for j, w in members[e])) for e in range(M)]
        context: list = [0.0] * M  # node -> sum over its hyperedges of weight * hyperedge feature
        for e in range(M):
            for j, w in members[e]:
                context[j] = context[j] + w * edges[e]
        enhanced = []
        for n in range(M):
            v = _mlp(state, "node_mlp", context[n])
            enhanced.append(v / v.norm())
        out.append(torch.stack(enhanced))
    return torch.stack(out)


def _modules(dim: int, top_k: int, seed: int = 0) -> tuple[AceHgnn, AceHgnnGraph]:
    torch.manual_seed(seed)
    dense = AceHgnn(dim, AceSettings(top_k=top_k, hidden=8))
    graph = AceHgnnGraph(dim, AceSettings(top_k=top_k, hidden=8))
    graph.load_state_dict(dense.state_dict(), strict=True)
    return dense, graph


def _check_all_agree(dense: AceHgnn, graph: AceHgnnGraph, nodes: torch.Tensor, affinity: torch.Tensor | None):
    k = dense.settings.top_k
    with torch.no_grad():
        reference = oracle(dense.state_dict(), nodes, affinity, k).float()
        results = {
            "dense forward": dense(nodes, affinity),
            "graph forward": graph(nodes, affinity),
            "dense all tokens": dense.enhance_tokens(nodes, affinity),
            "graph all tokens": graph.enhance_tokens(nodes, affinity),
        }
    for name, value in results.items():
        expected = reference[:, 0] if value.ndim == 2 else reference
        assert (value - expected).abs().max().item() <= TOL, name
    return results["dense forward"]


@pytest.mark.parametrize("top_k", [1, 3, 5, 50])
@pytest.mark.parametrize("with_attention", [True, False])
def test_three_implementations_agree_on_random_inputs(top_k: int, with_attention: bool) -> None:
    dense, graph = _modules(16, top_k)
    torch.manual_seed(1)
    nodes = torch.randn(3, 13, 16)
    affinity = torch.randn(3, 12) * 3 if with_attention else None
    out = _check_all_agree(dense, graph, nodes, affinity)
    assert torch.allclose(out.norm(dim=-1), torch.ones(3), atol=1e-6)


def test_global_row_uses_the_attention_scores() -> None:
    dense, _ = _modules(16, 3)
    nodes = torch.randn(2, 9, 16)
    a, b = torch.randn(2, 8), torch.randn(2, 8)
    with torch.no_grad():
        assert (dense(nodes, a) - dense(nodes, b)).abs().max() > 1e-3
        assert (dense(nodes, None) - dense(nodes, a)).abs().max() > 1e-3


def test_state_dicts_are_interchangeable() -> None:
    dense, graph = _modules(12, 5)
    assert list(dense.state_dict()) == list(graph.state_dict())
    fresh = AceHgnn(12, AceSettings(top_k=5, hidden=8))
    fresh.load_state_dict(graph.state_dict(), strict=True)
    nodes = torch.randn(2, 7, 12)
    with torch.no_grad():
        assert torch.equal(fresh(nodes), dense(nodes))


def test_gradients_reach_both_mlps_and_the_attention() -> None:
    for module in _modules(16, 3):
        nodes = torch.randn(2, 11, 16, requires_grad=True)
        affinity = torch.randn(2, 10, requires_grad=True)
        (module(nodes, affinity) * torch.randn(2, 16)).sum().backward()
        for name, param in module.named_parameters():
            assert param.grad is not None and param.grad.abs().sum() > 0, f"{type(module).__name__}.{name}"
        assert nodes.grad.abs().sum() > 0 and affinity.grad.abs().sum() > 0


def test_bad_inputs_are_plain_value_errors() -> None:
    dense, _ = _modules(8, 5)
    with pytest.raises(ValueError, match="at least 2 patch tokens"):
        dense(torch.randn(2, 2, 8))
    with pytest.raises(ValueError, match="global_affinity must be"):
        dense(torch.randn(2, 6, 8), torch.randn(2, 6))
    with pytest.raises(ValueError, match=r"\(B, 1 \+ N, D\)"):
        dense(torch.randn(6, 8))
    with pytest.raises(ValueError, match="top_k"):
        AceSettings(top_k=0)
    with pytest.raises(ValueError, match="hidden"):
        AceSettings(hidden=2.5)  # type: ignore[arg-type]


def test_graph_module_without_torch_geometric_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch_geometric", None)  # makes `import torch_geometric` raise ImportError
    with pytest.raises(ImportError, match=r"encoderzoo\[graph\]"):
        AceHgnnGraph(8)


# ---------------------------------------------------------------------------------------------------------------
# every registry entry (tiny random variant) through ace_inputs


def _tiny(name: str, **kwargs) -> tuple[encoderzoo.Encoder, torch.Tensor]:
    spec = encoderzoo.get_spec(name).tiny_variant()
    torch.manual_seed(0)
    encoder = encoderzoo.load(spec, pretrained=False, **kwargs).eval()
    pixels = torch.randn(2, 3, spec.input_size, spec.input_size)
    return encoder, pixels


@pytest.mark.parametrize("name", encoderzoo.list_encoders())
def test_registry_entries_through_ace_inputs(name: str) -> None:
    encoder, pixels = _tiny(name)
    spec = encoder.spec
    with torch.no_grad():
        nodes, affinity = ace_inputs(encoder, pixels)
        tokens = encoder.forward_tokens(pixels)
        embedding = encoder.embed(pixels)
    patches = tokens.patches if encoder.proj is None else encoder.proj(tokens.patches)
    assert nodes.shape == (2, 1 + patches.shape[1], spec.output_dim)
    atol = reorder_atol(embedding, sequential_layers(encoder))  # hooks may take other kernels than embed()
    torch.testing.assert_close(nodes[:, 0], embedding, atol=atol, rtol=0)  # the global node is the embedding
    torch.testing.assert_close(nodes[:, 1:], patches, atol=atol, rtol=0)  # then the patch tokens, no registers
    if spec.num_prefix_tokens >= 1:
        assert affinity is not None and affinity.shape == (2, patches.shape[1])
    else:
        assert affinity is None  # pooled embedding as the global node, cosine affinity
    dense, graph = _modules(spec.output_dim, 3)
    out = _check_all_agree(dense, graph, nodes, affinity)
    assert torch.allclose(out.norm(dim=-1), torch.ones(2), atol=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# the hook against a hand computation


def _rotate(x: torch.Tensor, rope: torch.Tensor, half: bool) -> torch.Tensor:
    sin, cos = rope.chunk(2, dim=-1)
    if half:
        x1, x2 = x.chunk(2, dim=-1)
        turned = torch.cat([-x2, x1], dim=-1)
    else:
        turned = torch.stack([-x[..., 1::2], x[..., ::2]], dim=-1).reshape(x.shape)
    return x * cos + turned * sin


def _hand_attention(encoder: encoderzoo.Encoder, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-head scaled logits ``(B, heads, T, T)`` of the last block and that block's attention output."""
    trunk = encoder.trunk
    x = trunk.patch_embed(pixels)
    rope = None
    if hasattr(trunk, "rope"):  # Eva (DINOv3)
        x, rope = trunk._pos_embed(x)
        x = trunk.norm_pre(x)
        for block in trunk.blocks[:-1]:
            x = block(x, rope=rope)
    else:
        x = trunk.norm_pre(trunk.patch_drop(trunk._pos_embed(x)))
        for block in trunk.blocks[:-1]:
            x = block(x)
    attn = trunk.blocks[-1].attn
    h = trunk.blocks[-1].norm1(x)
    expected_out = attn(h, rope=rope) if rope is not None else attn(h)
    logits, manual_out = _hand_logits(attn, h, rope, trunk.num_prefix_tokens)
    return logits, manual_out - expected_out


def _hand_logits(
    attn: torch.nn.Module, h: torch.Tensor, rope: torch.Tensor | None, npt: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-head scaled logits ``(B, heads, T, T)`` and the attention output, from the weights by hand; RoPE
    rotates the tokens after the first ``npt``."""
    B, T, C = h.shape
    heads = attn.num_heads
    bias = attn.qkv.bias
    if getattr(attn, "q_bias", None) is not None:
        bias = torch.cat([attn.q_bias, attn.k_bias, attn.v_bias])
    q, k, v = (h @ attn.qkv.weight.t() + (0 if bias is None else bias)).reshape(B, T, 3, heads, -1).unbind(2)
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))
    q, k = attn.q_norm(q), attn.k_norm(k)
    if rope is not None:
        half = attn.rotate_half
        q = torch.cat([q[:, :, :npt], _rotate(q[:, :, npt:], rope, half)], dim=2)
        k = torch.cat([k[:, :, :npt], _rotate(k[:, :, npt:], rope, half)], dim=2)
    logits = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    mixed = (logits.softmax(-1) @ v).transpose(1, 2).reshape(B, T, C)
    return logits, attn.proj(attn.norm(mixed))


@pytest.mark.parametrize("name", ["dinov2-small", "dinov2-small-reg4", "dinov3-small", "biomedclip"])
def test_hook_equals_hand_computation(name: str) -> None:
    encoder, pixels = _tiny(name, attention="math")
    with torch.no_grad():
        logits, mismatch = _hand_attention(encoder, pixels)
        _, affinity = ace_inputs(encoder, pixels)
    assert mismatch.abs().max() < 1e-5  # the hand q / k / v (RoPE included) reproduce the module's output
    npt = encoder.spec.num_prefix_tokens
    expected = logits[:, :, 0, npt:].mean(dim=1)  # class token -> patches, registers skipped, heads averaged
    assert affinity is not None and (affinity - expected).abs().max() < 1e-5


_NO_PROMPTS = importlib.util.find_spec("encoderzoo.adapters.prompt") is None


@pytest.mark.skipif(_NO_PROMPTS, reason="adapters/prompt.py (VPT owner) not there yet")
@pytest.mark.parametrize("name", ["dinov2-small", "dinov3-small"])
def test_hook_skips_visual_prompts(name: str) -> None:
    """With prompts between the prefix and the patches, the global row is still class token -> patches."""
    from encoderzoo.adapters.ace_hgnn import last_attention
    from encoderzoo.adapters.prompt import PromptSettings, add_prompts

    encoder, pixels = _tiny(name, attention="math")
    add_prompts(encoder, PromptSettings(num_prompts=3, deep=True))
    seen = {}

    def capture(module, args, kwargs, output):  # the last attention's input, its RoPE and prefix count at call time
        seen.update(h=args[0], rope=kwargs.get("rope"), npt=getattr(module, "num_prefix_tokens", 0), out=output)

    attn = last_attention(encoder.trunk)
    handle = attn.register_forward_hook(capture, with_kwargs=True)
    with torch.no_grad():
        nodes, affinity = ace_inputs(encoder, pixels)
        embedding = encoder.embed(pixels)
    handle.remove()
    logits, manual_out = _hand_logits(attn, seen["h"], seen["rope"], seen["npt"])
    assert (manual_out - seen["out"]).abs().max() < 1e-5  # the hand computation is the module's own
    first_patch = encoder.spec.num_prefix_tokens + 3
    assert seen["h"].shape[1] == first_patch + nodes.shape[1] - 1
    expected = logits[:, :, 0, first_patch:].mean(dim=1)
    assert affinity is not None and (affinity - expected).abs().max() < 1e-5
    torch.testing.assert_close(nodes[:, 0], embedding, atol=reorder_atol(embedding, sequential_layers(encoder)), rtol=0)


def _lora_last_qkv(encoder: encoderzoo.Encoder) -> None:
    """peft LoRA on the last block's qkv only, with a non-zero update."""
    from peft import LoraConfig, get_peft_model

    last = len(encoder.trunk.blocks) - 1
    config = LoraConfig(r=4, lora_alpha=8, target_modules=rf"blocks\.{last}\.attn\.qkv")
    encoder.trunk = get_peft_model(encoder.trunk, config)
    torch.manual_seed(3)
    for name, param in encoder.trunk.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.5)


@pytest.mark.parametrize("name", ["dinov2-small-reg4", "dinov3-small"])
def test_hook_sees_a_peft_wrapped_qkv(name: str) -> None:
    encoder, pixels = _tiny(name)
    with torch.no_grad():
        _, base = ace_inputs(encoder, pixels)
        _lora_last_qkv(encoder)
        nodes, adapted = ace_inputs(encoder, pixels)
        encoder.trunk = encoder.trunk.merge_and_unload()  # plain timm trunk with W + scale * B A
        _, merged = ace_inputs(encoder, pixels)
    assert (adapted - base).abs().max() > 1e-3  # the adapter changes the class-token attention ...
    assert (adapted - merged).abs().max() < 1e-5  # ... exactly as its merged weights do
    assert nodes.shape[1] == adapted.shape[1] + 1


_NO_LORA = importlib.util.find_spec("encoderzoo.adapters.lora") is None


@pytest.mark.skipif(_NO_LORA, reason="adapters/lora.py (LoRA owner) not there yet")
@pytest.mark.parametrize("name", ["dinov2-small-reg4", "dinov3-small", "biomedclip"])
def test_ace_inputs_after_add_lora(name: str) -> None:
    from encoderzoo.adapters.lora import LoraSettings, add_lora, merge_lora

    encoder, pixels = _tiny(name)
    add_lora(encoder, LoraSettings())
    for pname, param in encoder.trunk.named_parameters():
        if "lora_B" in pname:
            torch.nn.init.normal_(param, std=0.5)
    module = AceHgnn(encoder.spec.output_dim)
    nodes, affinity = ace_inputs(encoder, pixels)
    out = module(nodes, affinity)
    assert torch.allclose(out.norm(dim=-1), torch.ones(2), atol=1e-6)
    out.sum().backward()
    lora_grads = [p.grad for n, p in encoder.trunk.named_parameters() if "lora_A" in n]
    assert lora_grads and all(g is not None and g.abs().sum() > 0 for g in lora_grads)
    merge_lora(encoder)  # LoRA in every block: the merged plain trunk gives the same nodes and global row
    with torch.no_grad():
        merged_nodes, merged_affinity = ace_inputs(encoder, pixels)
    assert (merged_nodes - nodes).abs().max() < 1e-4 and (merged_affinity - affinity).abs().max() < 1e-4


# ---------------------------------------------------------------------------------------------------------------
# label-guided InfoNCE


def _loss_oracle(image: torch.Tensor, text: torch.Tensor, scale: float, labels: list) -> float:
    B = len(image)
    logits = [[scale * float(image[i] @ text[j]) for j in range(B)] for i in range(B)]
    total = 0.0
    for direction in ("image", "text"):
        for i in range(B):
            row = [logits[i][j] if direction == "image" else logits[j][i] for j in range(B)]
            kept = [row[j] for j in range(B) if j == i or labels[j] != labels[i]]
            total += -row[i] + math.log(sum(math.exp(v) for v in kept))
    return total / (2 * B)


def test_label_guided_info_nce_drops_same_label_negatives() -> None:
    torch.manual_seed(0)
    image = F.normalize(torch.randn(6, 8), dim=-1)
    text = F.normalize(torch.randn(6, 8), dim=-1)
    multi_hot = torch.tensor([[1, 0, 1], [0, 0, 0], [1, 0, 1], [0, 1, 0], [0, 0, 0], [1, 0, 1]])
    loss = label_guided_info_nce(image, text, 10.0, multi_hot)
    expected = _loss_oracle(image, text, 10.0, [tuple(r) for r in multi_hot.tolist()])
    assert abs(loss.item() - expected) < 1e-5
    classes = torch.tensor([2, 0, 2, 1, 0, 2])
    assert abs(label_guided_info_nce(image, text, 10.0, classes).item() - expected) < 1e-5
    plain = label_guided_info_nce(image, text, 10.0)
    assert abs(plain.item() - _loss_oracle(image, text, 10.0, list(range(6)))) < 1e-5
    assert plain.item() > loss.item()  # removing negatives can only lower the loss here


def test_same_label_pairs() -> None:
    labels = torch.tensor([[1.0, 0.0], [1.0, 0.0], [float("nan"), 0.0], [float("nan"), 0.0]])
    expected = torch.tensor([[False, True, False, False], [True, False, False, False], [False] * 4, [False] * 4])
    assert torch.equal(same_label_pairs(labels), expected)  # unknown (NaN) labels are never identical
    with pytest.raises(ValueError, match="image and text features"):
        label_guided_info_nce(torch.randn(3, 4), torch.randn(2, 4), 1.0)
