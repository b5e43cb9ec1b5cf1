"""Text towers against their reference implementations, on identical random weights (fp32, tolerance 1e-4).

BiomedCLIP: open_clip ``CustomTextCLIP`` with an HF BERT text tower (tiny ``BertConfig`` saved locally) and its
``HFTokenizer``; MedSigLIP: transformers ``SiglipModel``. Compared: token ids, text embeddings, image-text
logits, and image embeddings (unchanged by the text tower).
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

import encoderzoo
from encoderzoo import EncoderSpec, StateDictMismatchError, get_spec
from encoderzoo.text import (
    NoTextTowerError,
    TextTokenizer,
    TextTower,
    TokenizerError,
    TokenizerSource,
    build_text_tower,
)
from encoderzoo.text.tokenizer import TOKENIZER_FILES

from .helpers import open_clip_reference, siglip_hf_reference
from .text_helpers import (
    TEXTS,
    biomedclip_reference,
    sentencepiece_tokenizer,
    small_biomedclip_spec,
    wordpiece_tokenizer,
)

ATOL = 1e-4


def _report(name: str, what: str, diff: float) -> None:
    print(f"text parity {name:22s} {what:8s} max|diff| = {diff:.2e}")
    assert diff <= ATOL, f"{name} {what}: max abs diff {diff:.2e} > {ATOL}"


def _set_logit_params(module: torch.nn.Module, scale: float, bias: float | None = None) -> None:
    """Realistic scale/bias (random ones are ~N(0, 0.2)) so logit errors are not hidden by a tiny scale."""
    with torch.no_grad():
        module.logit_scale.fill_(scale)
        if bias is not None:
            module.logit_bias.fill_(bias)


def _cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(a, dim=-1) @ torch.nn.functional.normalize(b, dim=-1).T


@pytest.fixture(scope="module")
def biomedclip(tmp_path_factory):
    torch.manual_seed(0)
    spec = small_biomedclip_spec()
    folder = tmp_path_factory.mktemp("biomedclip")
    ref, _, tokenizer = biomedclip_reference(spec, folder)
    _set_logit_params(ref, math.log(50.0))
    path = folder / "open_clip_pytorch_model.bin"
    torch.save(ref.state_dict(), path)
    return spec, ref, path, tokenizer


@pytest.fixture(scope="module")
def medsiglip(tmp_path_factory):
    torch.manual_seed(0)
    spec = get_spec("medsiglip-448").tiny_variant()
    folder = tmp_path_factory.mktemp("medsiglip")
    ref, path = siglip_hf_reference(spec, folder / "model")
    _set_logit_params(ref, math.log(30.0), -4.0)
    ref.save_pretrained(folder / "model")
    return spec, ref, path, sentencepiece_tokenizer(folder / "tokenizer")


@pytest.mark.parametrize("attention", ["sdpa", "math"])
def test_biomedclip_text_matches_open_clip(biomedclip, attention):
    from open_clip.tokenizer import HFTokenizer

    spec, ref, path, tokenizer = biomedclip
    enc = encoderzoo.load(spec, weights=path, attention=attention, text=True, tokenizer=tokenizer)
    ref_ids = HFTokenizer(str(tokenizer), context_length=spec.text.context_length)(TEXTS)
    ids = enc.tokenize(TEXTS)
    assert torch.equal(ids, ref_ids)
    assert (ids == 0).any() and (ids[:, -1] != 0).any(), "the texts must mix padded and full-length rows"
    x = torch.randn(2, 3, spec.input_size, spec.input_size)
    with torch.no_grad():
        image_ref, text_ref, scale = ref(x, ref_ids)  # normalized features and exp(logit_scale)
        logits_ref = scale * image_ref @ text_ref.T
        text_emb = enc.encode_text(TEXTS)
        image_emb = enc.embed(x)
        logits = enc.similarity(image_emb, text_emb)
        _report(spec.name, "text", (text_emb - ref.encode_text(ref_ids)).abs().max().item())
        _report(spec.name, "image", (image_emb - ref.encode_image(x)).abs().max().item())
        _report(spec.name, "logits", (logits - logits_ref).abs().max().item())
    assert logits.shape == (2, len(TEXTS))
    assert not torch.allclose(logits, _cosine(image_emb, text_emb), atol=1e-2), "the logit scale must apply"


@pytest.mark.parametrize("attention", ["sdpa", "math"])
def test_medsiglip_text_matches_transformers_siglip(medsiglip, attention):
    from transformers import AutoTokenizer

    spec, ref, path, tokenizer = medsiglip
    enc = encoderzoo.load(spec, weights=path, attention=attention, text=True, tokenizer=tokenizer)
    ids = enc.tokenize(TEXTS)
    hf = AutoTokenizer.from_pretrained(str(tokenizer))
    expected = hf(TEXTS, padding="max_length", max_length=64, truncation=True, return_tensors="pt")["input_ids"]
    assert ids.shape == (len(TEXTS), 64) and torch.equal(ids, expected)
    x = torch.randn(2, 3, spec.input_size, spec.input_size)
    with torch.no_grad():
        out = ref(input_ids=ids, pixel_values=x)  # SigLIP as trained: input ids only, no padding mask
        text_emb = enc.encode_text(TEXTS)
        image_emb = enc.embed(x)
        logits = enc.similarity(image_emb, text_emb)
        _report(spec.name, "text", (text_emb - ref.text_model(input_ids=ids).pooler_output).abs().max().item())
        image_ref = ref.vision_model(pixel_values=x).pooler_output
        _report(spec.name, "image", (image_emb - image_ref).abs().max().item())
        _report(spec.name, "logits", (logits - out.logits_per_image).abs().max().item())
    assert not torch.allclose(logits, _cosine(image_emb, text_emb), atol=1e-2), "the logit scale must apply"


def test_short_texts_are_padded_to_the_full_context(biomedclip, medsiglip):
    """Both towers were trained on texts padded to the full context; SigLIP reads the last (padding) position."""
    for spec, _, path, tokenizer in (biomedclip, medsiglip):
        enc = encoderzoo.load(spec, weights=path, text=True, tokenizer=tokenizer)
        ids = enc.tokenize("normal")
        pad = enc.text.tokenizer.hf.pad_token_id
        assert ids.shape == (1, spec.text.context_length) and ids[0, -1] == pad and (ids[0] == pad).sum() > 1


def test_encode_text_accepts_token_ids_and_normalizes_on_request(medsiglip):
    spec, _, path, tokenizer = medsiglip
    enc = encoderzoo.load(spec, weights=path, text=True, tokenizer=tokenizer)
    with torch.no_grad():
        from_ids = enc.encode_text(enc.tokenize(TEXTS))
        normalized = enc.encode_text(TEXTS, normalize=True)
    assert torch.allclose(from_ids / from_ids.norm(dim=-1, keepdim=True), normalized, atol=1e-6)
    assert not torch.allclose(from_ids.norm(dim=-1), torch.ones(len(TEXTS)))
    with pytest.raises(ValueError, match="token ids must lie in"):
        enc.encode_text(torch.full((1, 8), spec.text.vocab_size))


def test_full_size_towers_have_the_reference_parameter_shapes():
    """Real BiomedCLIP / MedSigLIP sizes, on the meta device: every parameter name and shape equals the
    reference module's (open_clip HFTextEncoder over BertModel; transformers SiglipTextModel)."""
    from open_clip.hf_model import HFTextEncoder
    from transformers import BertConfig, SiglipTextConfig, SiglipTextModel

    bio, sig = get_spec("biomedclip"), get_spec("medsiglip-448")
    bert_config = BertConfig(vocab_size=30522, max_position_embeddings=512, pad_token_id=0)
    with torch.device("meta"):
        ours = {f"text.{k}": v.shape for k, v in build_text_tower(bio).state_dict().items()}
        ref = HFTextEncoder(
            "bert", 512, config=bert_config, pooler_type="cls_last_hidden_state_pooler", proj_type="mlp"
        )
        siglip_ref = SiglipTextModel(
            SiglipTextConfig(
                hidden_size=1152,
                intermediate_size=4304,
                num_attention_heads=16,
                num_hidden_layers=27,
                vocab_size=32000,
                projection_size=1152,
            )
        )
        siglip_ours = build_text_tower(sig).state_dict()
    expected = {f"text.{k}": v.shape for k, v in ref.state_dict().items() if not k.startswith("transformer.pooler.")}
    expected["text.logit_scale"] = torch.Size([])
    assert ours == expected
    siglip_expected = {k.removeprefix("text_model."): v.shape for k, v in siglip_ref.state_dict().items()}
    siglip_expected |= {"logit_scale": torch.Size([1]), "logit_bias": torch.Size([1])}
    assert {k: v.shape for k, v in siglip_ours.items()} == siglip_expected


def test_text_tower_only_on_request(biomedclip):
    spec, _, path, _ = biomedclip
    enc = encoderzoo.load(spec, weights=path)
    assert enc.text is None and not any(k.startswith("text.") for k in enc.state_dict())
    with pytest.raises(NoTextTowerError, match=r"text=True"):
        enc.encode_text(["pneumonia"])


def test_image_only_entries_have_no_text_api():
    spec = get_spec("dinov2-small").tiny_variant()
    with pytest.raises(NoTextTowerError, match="image-only"):
        encoderzoo.load(spec, pretrained=False, text=True)
    enc = encoderzoo.load(spec, pretrained=False)
    for call in (
        lambda: enc.encode_text(["x"]),
        lambda: enc.tokenize(["x"]),
        lambda: enc.similarity(torch.ones(1, 32), torch.ones(1, 32)),
    ):
        with pytest.raises(NoTextTowerError, match="image-only"):
            call()


def test_image_only_encoder_has_no_tower_and_raises_the_one_error():
    spec = get_spec("dinov2-small").tiny_variant()
    enc = encoderzoo.load(spec, pretrained=False)
    assert enc.text is None
    with pytest.raises(NoTextTowerError) as from_encoder:
        enc.require_text_tower()
    with pytest.raises(NoTextTowerError) as from_builder:
        build_text_tower(spec)
    assert "image-only" in str(from_encoder.value) and str(from_encoder.value) == str(from_builder.value)


def test_the_tower_builds_its_tokenizer_once_on_first_use(medsiglip, monkeypatch):
    import encoderzoo.text.tower as tower_module

    built = []

    class CountingTokenizer(TextTokenizer):
        def __init__(self, folder, text) -> None:
            built.append(folder)
            super().__init__(folder, text)

    monkeypatch.setattr(tower_module, "TextTokenizer", CountingTokenizer)
    spec, _, path, tokenizer = medsiglip
    enc = encoderzoo.load(spec, weights=path, text=True, tokenizer=tokenizer)
    assert isinstance(enc.text, TextTower) and built == []
    with torch.no_grad():
        first = enc.tokenize(TEXTS)
        enc.encode_text(TEXTS)
        assert torch.equal(enc.text.tokenize(TEXTS), first)
    assert built == [tokenizer]
    enc.text.tokenizer_source = TokenizerSource(local_dir=tokenizer)  # a new source: built again, once
    enc.tokenize(TEXTS)
    enc.tokenize(TEXTS)
    assert built == [tokenizer, tokenizer]


def test_a_tower_without_a_tokenizer_source_says_so():
    tower = build_text_tower(small_biomedclip_spec())
    tower.tokenizer_source = None
    with pytest.raises(TokenizerError, match="no tokenizer source"):
        tower.tokenize(["x"])


def test_checkpoint_without_text_tower_is_refused_with_text_true(tmp_path):
    """open_clip's built-in text transformer is not BiomedCLIP's BERT: nothing is silently left random."""
    spec = small_biomedclip_spec()
    _, path = open_clip_reference(spec, tmp_path)
    with pytest.raises(StateDictMismatchError, match="holds no text tower"):
        encoderzoo.load(spec, weights=path, text=True)


def test_index_buffers_of_older_transformers_checkpoints_are_dropped(biomedclip, tmp_path):
    """BiomedCLIP's file was written by transformers 4.x, which saved ``embeddings.position_ids``."""
    spec, ref, _, tokenizer = biomedclip
    state = ref.state_dict()
    state["text.transformer.embeddings.position_ids"] = torch.arange(spec.text.max_positions)[None]
    torch.save(state, tmp_path / "old.bin")
    enc = encoderzoo.load(spec, weights=tmp_path / "old.bin", text=True, tokenizer=tokenizer)
    with torch.no_grad():
        assert torch.allclose(enc.encode_text(TEXTS), ref.encode_text(enc.tokenize(TEXTS)), atol=ATOL)


def test_wrong_text_weights_are_listed(biomedclip, tmp_path):
    spec, ref, _, tokenizer = biomedclip
    state = ref.state_dict()
    state.pop("text.proj.2.weight")
    torch.save(state, tmp_path / "broken.bin")
    with pytest.raises(StateDictMismatchError, match=r"text\.proj\.2\.weight"):
        encoderzoo.load(spec, weights=tmp_path / "broken.bin", text=True, tokenizer=tokenizer)


def test_missing_tokenizer_offline_says_what_to_do():
    enc = encoderzoo.load(small_biomedclip_spec(), pretrained=False, text=True)
    with pytest.raises(encoderzoo.WeightsNotFoundError) as err:
        enc.tokenize(["pneumonia"])
    message = str(err.value)
    assert "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract@main" in message and "tokenizer=FOLDER" in message


def test_tokenizer_of_another_model_is_refused(tmp_path):
    siglip_vocab = sentencepiece_tokenizer(tmp_path / "spm")
    bert_vocab = wordpiece_tokenizer(tmp_path / "wp", vocab_size=200)
    bio = encoderzoo.load(small_biomedclip_spec(), pretrained=False, text=True, tokenizer=siglip_vocab)
    with pytest.raises(TokenizerError, match="pads with id"):
        bio.tokenize(["x"])
    sig = encoderzoo.load(get_spec("medsiglip-448").tiny_variant(), pretrained=False, text=True, tokenizer=bert_vocab)
    with pytest.raises(TokenizerError, match="embeds only 128"):
        sig.tokenize(["x"])
    empty = tmp_path / "empty"
    empty.mkdir()
    bio = encoderzoo.load(small_biomedclip_spec(), pretrained=False, text=True, tokenizer=empty)
    with pytest.raises(TokenizerError, match="no tokenizer vocabulary"):
        bio.tokenize(["x"])


def test_save_pretrained_round_trip_keeps_text_tower_and_tokenizer(medsiglip, tmp_path):
    spec, _, path, tokenizer = medsiglip
    enc = encoderzoo.load(spec, weights=path, text=True, tokenizer=tokenizer)
    folder = encoderzoo.save_pretrained(enc, tmp_path / "saved")
    copied = sorted(p.name for p in (folder / "tokenizer").iterdir())
    assert copied == sorted(p.name for p in tokenizer.iterdir() if p.name in TOKENIZER_FILES)
    assert (folder / "tokenizer" / "spiece.model").read_bytes() == (tokenizer / "spiece.model").read_bytes()
    back = encoderzoo.load(f"local-dir:{folder}")
    assert back.text is not None and back.spec.text == spec.text
    with torch.no_grad():
        assert torch.equal(back.encode_text(TEXTS), enc.encode_text(TEXTS))
    image_only = encoderzoo.load(f"local-dir:{folder}", text=False)
    assert image_only.text is None


def test_saving_without_a_tokenizer_writes_nothing(tmp_path):
    enc = encoderzoo.load(get_spec("medsiglip-448").tiny_variant(), pretrained=False, text=True)
    with pytest.raises(encoderzoo.WeightsNotFoundError):
        encoderzoo.save_pretrained(enc, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_spec_round_trip_keeps_the_text_spec():
    spec = get_spec("biomedclip")
    again = EncoderSpec.from_dict(spec.to_dict())
    assert again.text == spec.text and again.text.tokenizer_repo.startswith("microsoft/BiomedNLP-BiomedBERT")
    tiny = spec.tiny_variant()
    assert tiny.text.width == 32 and tiny.text.architecture == "bert"
    with pytest.raises(ValueError, match="image-only"):
        dataclasses.replace(get_spec("dinov2-small"), tiny={"text": {"width": 8}}).tiny_variant()


def test_hf_hub_saved_encoder_brings_its_tokenizer_offline(medsiglip, tmp_path, monkeypatch):
    """A saved image-text encoder on the Hub (here: already in the local cache) reads its tokenizer/ subfolder."""
    import shutil

    from huggingface_hub import constants as hub_constants

    spec, _, path, tokenizer = medsiglip
    enc = encoderzoo.load(spec, weights=path, text=True, tokenizer=tokenizer)
    saved = encoderzoo.save_pretrained(enc, tmp_path / "saved")
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "cache" / "models--me--tiny-clip"
    shutil.copytree(saved, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    again = encoderzoo.load("hf-hub:me/tiny-clip")
    assert (
        again.text.tokenizer_source.subfolder == "tokenizer" and again.text.tokenizer_source.repo_id == "me/tiny-clip"
    )
    with torch.no_grad():
        assert torch.equal(again.encode_text(TEXTS), enc.encode_text(TEXTS))


def test_the_old_text_names_still_work_and_warn(medsiglip, monkeypatch):
    """Deprecated before removal: encoderzoo.text.api's free functions, towers.image_text_logits and
    Encoder.tokenizer_source forward to the TextTower and give what the Encoder methods give."""
    import importlib
    import sys

    from encoderzoo.text.tower import image_text_logits
    from encoderzoo.text.towers import image_text_logits as old_logits

    spec, _, path, tokenizer = medsiglip
    enc = encoderzoo.load(spec, weights=path, text=True, tokenizer=tokenizer)
    monkeypatch.delitem(sys.modules, "encoderzoo.text.api", raising=False)
    with pytest.warns(DeprecationWarning, match="encoderzoo.text.api is deprecated"):
        api = importlib.import_module("encoderzoo.text.api")
    with torch.no_grad():
        texts = api.encode_text(enc, TEXTS, normalize=True)
        assert torch.equal(texts, enc.encode_text(TEXTS, normalize=True))
        image = torch.nn.functional.normalize(torch.randn(2, texts.shape[1]), dim=-1)
        assert torch.equal(api.similarity(enc, image, texts), enc.similarity(image, texts))
    assert api.text_tower(enc) is enc.text and api.tokenizer_of(enc) is enc.text.tokenizer
    assert old_logits is image_text_logits
    assert enc.tokenizer_source is enc.text.tokenizer_source
    moved = TokenizerSource(local_dir=tokenizer)
    enc.tokenizer_source = moved
    assert enc.text.tokenizer_source is moved
    image_only = encoderzoo.load(encoderzoo.get_spec("dinov2-small").tiny_variant(), pretrained=False)
    assert image_only.tokenizer_source is None
    with pytest.raises(NoTextTowerError, match="image-only"):
        image_only.tokenizer_source = moved
