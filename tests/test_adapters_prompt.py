"""Visual prompt tuning on every registry entry with an insertion point (tiny random variants).

Reference: a shallow-prompted ViT is exactly the timm model of the same architecture with ``num_prompts``
extra register tokens (after the class/register tokens, before the patches) that get no absolute position
embedding and, in RoPE models, no rotation (timm rotates only the tokens after ``num_prefix_tokens``). The
oracle below is built by timm itself from that description, not by the code under test.
"""

from __future__ import annotations

import pytest
import timm
import torch
from timm.models.eva import Eva, EvaAttention

import encoderzoo
from encoderzoo.adapters.prompt import PromptedTrunk, PromptSettings, add_prompts, remove_prompts, supported_methods
from encoderzoo.encoder import _TIMM_POOL
from encoderzoo.errors import EncoderZooError, UnsupportedAdapterError
from tests.helpers import pixels, tiny_encoder

NAMES = encoderzoo.list_encoders()
PROMPTABLE = [n for n in NAMES if encoderzoo.get_spec(n).prompt_insertion is not None]
UNSUPPORTED = [n for n in NAMES if encoderzoo.get_spec(n).prompt_insertion is None]
P = 3


pytestmark = pytest.mark.usefixtures("one_thread")


def prompted(name: str, deep: bool) -> tuple[encoderzoo.Encoder, torch.nn.Module]:
    """A prompted tiny encoder with non-trivial prompts, and its base trunk."""
    encoder = tiny_encoder(name)
    base = encoder.trunk
    add_prompts(encoder, PromptSettings(num_prompts=P, deep=deep))
    with torch.no_grad():
        encoder.trunk.prompts.normal_(0.0, 1.0)
    return encoder, base


def register_oracle(encoder: encoderzoo.Encoder, base: torch.nn.Module) -> torch.nn.Module:
    """timm's own model with the prompts (set 0) as P extra register tokens without position embedding."""
    spec, prompts = encoder.spec, encoder.trunk.prompts[0].detach()
    regs = 0 if base.reg_token is None else base.reg_token.shape[1]
    key = "num_reg_tokens" if isinstance(base, Eva) else "reg_tokens"
    oracle = timm.create_model(
        spec.architecture,
        pretrained=False,
        num_classes=0,
        global_pool=_TIMM_POOL[spec.pooling],
        **{**spec.arch_kwargs, key: regs + P},
    )
    state = dict(base.state_dict())
    state["reg_token"] = torch.cat([base.reg_token.detach(), prompts[None]], 1) if regs else prompts[None]
    if base.pos_embed is not None and not base.no_embed_class:  # pos_embed covers the prefix tokens too
        npt = spec.num_prefix_tokens
        pos = base.pos_embed.detach()
        state["pos_embed"] = torch.cat([pos[:, :npt], torch.zeros(1, P, pos.shape[-1]), pos[:, npt:]], 1)
    oracle.load_state_dict(state, strict=True)
    assert oracle.num_prefix_tokens == spec.num_prefix_tokens + P
    return oracle.eval()


def drop_prompt_slots(tokens: torch.Tensor, npt: int) -> torch.Tensor:
    return torch.cat([tokens[:, :npt], tokens[:, npt + P :]], 1)


@pytest.mark.parametrize("name", PROMPTABLE)
def test_shallow_prompts_are_unembedded_register_tokens(name):
    """Against timm with P extra registers: same place, no position embedding, no RoPE rotation, same pooling."""
    encoder, base = prompted(name, deep=False)
    oracle = register_oracle(encoder, base)
    x = pixels(encoder)
    npt = encoder.spec.num_prefix_tokens
    with torch.no_grad():
        ref_tokens = oracle.forward_features(x)
        ref = oracle.forward_head(ref_tokens, pre_logits=True)
        ref = encoder.proj(ref) if encoder.proj is not None else ref
        torch.testing.assert_close(encoder.embed(x), ref, atol=1e-5, rtol=1e-5)
        tokens = encoder.forward_tokens(x)
        torch.testing.assert_close(
            torch.cat([tokens.prefix, tokens.patches], 1), drop_prompt_slots(ref_tokens, npt), atol=1e-5, rtol=1e-5
        )


@pytest.mark.parametrize("name", PROMPTABLE)
def test_deep_prompts_against_a_hand_written_loop(name):
    """Deep: a new prompt set before every block; a loop over the timm oracle's own blocks is the reference."""
    encoder, base = prompted(name, deep=True)
    prompts = encoder.trunk.prompts.detach()
    assert prompts.shape == (len(base.blocks), P, encoder.spec.embed_dim)
    oracle = register_oracle(encoder, base)
    npt = encoder.spec.num_prefix_tokens
    x = pixels(encoder)
    with torch.no_grad():
        h = oracle.patch_embed(x)
        h, rope = oracle._pos_embed(h) if isinstance(oracle, Eva) else (oracle._pos_embed(h), None)
        h = oracle.norm_pre(h)
        for i, block in enumerate(oracle.blocks):
            h = h.clone()
            h[:, npt : npt + P] = prompts[i]
            h = block(h, rope=rope) if rope is not None else block(h)
        ref = oracle.forward_head(oracle.norm(h), pre_logits=True)
        ref = encoder.proj(ref) if encoder.proj is not None else ref
        torch.testing.assert_close(encoder.embed(x), ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", PROMPTABLE)
def test_prompts_change_the_output_but_not_its_form(name):
    encoder = tiny_encoder(name)
    x = pixels(encoder)
    with torch.no_grad():
        base_embed, base_tokens = encoder.embed(x), encoder.forward_tokens(x)
    add_prompts(encoder, PromptSettings(num_prompts=P))
    with torch.no_grad():
        shallow_embed, tokens = encoder.embed(x), encoder.forward_tokens(x)
    assert shallow_embed.shape == base_embed.shape == (2, encoder.spec.output_dim)
    assert (shallow_embed - base_embed).abs().max() > 1e-3 * base_embed.abs().max()
    assert tokens.prefix.shape == base_tokens.prefix.shape  # no prompt among the prefix or patch tokens
    assert tokens.patches.shape == base_tokens.patches.shape
    shallow_prompts = encoder.trunk.prompts.detach().clone()

    remove_prompts(encoder)
    with torch.no_grad():
        assert torch.equal(encoder.embed(x), base_embed)  # the base trunk is untouched
    add_prompts(encoder, PromptSettings(num_prompts=P, deep=True))
    with torch.no_grad():
        encoder.trunk.prompts[0] = shallow_prompts[0]  # same first set: only the per-block replacement differs
        deep_embed = encoder.embed(x)
    assert (deep_embed - shallow_embed).abs().max() > 1e-3 * shallow_embed.abs().max()


@pytest.mark.parametrize("name", PROMPTABLE)
@pytest.mark.parametrize("deep", [False, True])
def test_only_prompts_get_gradients(name, deep):
    encoder, _ = prompted(name, deep)
    trainable = [n for n, p in encoder.named_parameters() if p.requires_grad]
    assert trainable == ["trunk.prompts"]
    encoder.train()
    encoder.embed(pixels(encoder)).square().mean().backward()
    grad = encoder.trunk.prompts.grad
    assert grad is not None and bool((grad.flatten(1).abs().sum(1) > 0).all())  # every block's set is used
    assert all(p.grad is None for n, p in encoder.named_parameters() if n != "trunk.prompts")


def test_rope_prefix_count_is_restored_even_on_error(monkeypatch):
    encoder, base = prompted("dinov3-small", deep=False)
    attns = [m for m in base.modules() if isinstance(m, EvaAttention)]
    before = [a.num_prefix_tokens for a in attns]
    assert before == [encoder.spec.num_prefix_tokens] * len(attns)
    seen = []

    def failing_block(x, rope=None):
        seen.append([a.num_prefix_tokens for a in attns])
        raise RuntimeError("boom")

    with torch.no_grad():
        encoder.embed(pixels(encoder))
        assert [a.num_prefix_tokens for a in attns] == before
        monkeypatch.setattr(base.blocks[1], "forward", failing_block)
        with pytest.raises(RuntimeError, match="boom"):
            encoder.embed(pixels(encoder))
    assert seen == [[n + P for n in before]]  # inside the forward the prompts count as unrotated prefix
    assert [a.num_prefix_tokens for a in attns] == before


def test_init_follows_vpt():
    """Jia et al.: uniform in +-sqrt(6 / (3 * patch**2 + dim)) (Xavier-uniform of a patch-embedding output)."""
    encoder = tiny_encoder("biomedclip")
    add_prompts(encoder, PromptSettings(num_prompts=50, deep=True))
    prompts = encoder.trunk.prompts.detach()
    bound = (6.0 / (3 * 16**2 + 192)) ** 0.5
    assert prompts.abs().max() <= bound
    assert prompts.abs().max() > 0.95 * bound and abs(prompts.std().item() - bound / 3**0.5) < 0.05 * bound
    assert isinstance(encoder.trunk, PromptedTrunk) and encoder.trunk.num_prefix_tokens == 1  # base attrs
    with pytest.raises(UnsupportedAdapterError, match="forward_intermediates"):
        encoder.trunk.forward_intermediates(pixels(encoder))  # the base's would silently skip the prompts


@pytest.mark.parametrize("name", UNSUPPORTED)
def test_encoders_without_insertion_point_are_refused(name):
    encoder = encoderzoo.load(encoderzoo.get_spec(name).tiny_variant(), pretrained=False)
    refusal = r"no prompt insertion point.*supports: head, lora, ace-hgnn, full$"
    with pytest.raises(UnsupportedAdapterError, match=refusal):
        add_prompts(encoder)
    assert supported_methods(encoder.spec) == ("head", "lora", "ace-hgnn", "full")


def test_supported_methods_of_a_vit():
    vit = ("head", "lora", "vpt", "vpt-deep", "ace-hgnn", "full")
    assert supported_methods(encoderzoo.get_spec("dinov3-small")) == vit
    assert supported_methods(encoderzoo.get_spec("biomedclip")) == (*vit, "coop", "ace-lora")  # image-text


def test_settings_and_misuse():
    with pytest.raises(ValueError, match="positive integer"):
        PromptSettings(num_prompts=0)
    encoder = tiny_encoder("dinov2-small")
    with pytest.raises(EncoderZooError, match="no visual prompts"):
        remove_prompts(encoder)
    add_prompts(encoder)
    with pytest.raises(EncoderZooError, match="already has visual prompts"):
        add_prompts(encoder)
