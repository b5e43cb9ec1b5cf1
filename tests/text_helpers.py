"""Tiny tokenizers and image-text reference models built locally, for offline text-tower tests.

- ``wordpiece_tokenizer``: an uncased WordPiece vocabulary trained with ``tokenizers`` (BERT layout, [PAD] = 0),
  saved as ``vocab.txt`` + ``tokenizer_config.json`` (what transformers' ``AutoTokenizer`` and open_clip's
  ``HFTokenizer`` read), like PubMedBERT's files.
- ``sentencepiece_tokenizer``: a SentencePiece unigram model saved as ``spiece.model`` for ``SiglipTokenizer``,
  like SigLIP's files.
- ``biomedclip_reference``: open_clip ``CustomTextCLIP`` as BiomedCLIP's ``open_clip_config.json`` builds it
  (timm ViT + ``HFTextEncoder`` with ``cls_last_hidden_state_pooler`` and an ``mlp`` projection), its HF text
  config a tiny ``BertConfig`` saved locally (open_clip calls ``AutoConfig.from_pretrained`` even for random
  init), saved as ``open_clip_pytorch_model.bin``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from unittest import mock

import timm
import torch

from encoderzoo import EncoderSpec, get_spec

from .helpers import biomedclip_vision_cfg, randomize_

CORPUS = [
    "a chest x-ray showing pneumonia.",
    "a chest radiograph with normal lungs.",
    "no pleural effusion.",
    "a chest x-ray showing no cardiomegaly.",
    "atelectasis, consolidation, edema, emphysema, fibrosis, hernia, infiltration, mass, nodule, pneumothorax.",
    "a microscopic image of a basophil, eosinophil, lymphocyte, monocyte, neutrophil or platelet.",
    "a dermatoscopic image of melanoma.",
    "an image of a thing.",
]
TEXTS = [
    "a chest x-ray showing pneumonia.",
    "normal",
    "A  Chest   X-ray &amp; no PLEURAL effusion, with an unseenword!",
    "a dermatoscopic image of melanoma " * 6,  # longer than the tiny context: truncated
]


def wordpiece_tokenizer(folder: Path, vocab_size: int = 200) -> Path:
    from tokenizers import BertWordPieceTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    trainer = BertWordPieceTokenizer(lowercase=True)
    trainer.train_from_iterator(CORPUS * 4, vocab_size=vocab_size, min_frequency=1)
    vocab = sorted(trainer.get_vocab().items(), key=lambda item: item[1])
    (folder / "vocab.txt").write_text("".join(f"{token}\n" for token, _ in vocab))
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "BertTokenizer", "do_lower_case": True, "model_max_length": 512})
    )
    return folder


def sentencepiece_tokenizer(folder: Path, vocab_size: int = 100) -> Path:
    import sentencepiece as spm

    folder.mkdir(parents=True, exist_ok=True)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS * 4),
        model_prefix=str(folder / "spiece"),
        vocab_size=vocab_size,
        model_type="unigram",
        character_coverage=1.0,
        hard_vocab_limit=False,
        minloglevel=2,
    )
    (folder / "spiece.vocab").unlink()
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "SiglipTokenizer", "model_max_length": 64})
    )
    return folder


def small_biomedclip_spec() -> EncoderSpec:
    """The tiny BiomedCLIP spec at 32 px (2 x 2 patches): the same architectures, a faster test."""
    spec = get_spec("biomedclip").tiny_variant()
    return dataclasses.replace(spec, input_size=32, arch_kwargs={**spec.arch_kwargs, "img_size": 32})


def biomedclip_reference(spec: EncoderSpec, folder: Path):
    """(open_clip model, checkpoint path, tokenizer folder) for the tiny BiomedCLIP spec."""
    from open_clip.model import CustomTextCLIP
    from transformers import BertConfig

    text = spec.text
    assert text is not None
    bert_dir = wordpiece_tokenizer(folder / "bert")
    BertConfig(
        vocab_size=text.vocab_size,
        hidden_size=text.width,
        num_hidden_layers=text.depth,
        num_attention_heads=text.heads,
        intermediate_size=text.mlp_dim,
        max_position_embeddings=text.max_positions,
        pad_token_id=0,
    ).save_pretrained(bert_dir)
    vision_cfg = biomedclip_vision_cfg(spec)
    text_cfg = dict(
        hf_model_name=str(bert_dir),
        hf_tokenizer_name=str(bert_dir),
        hf_proj_type="mlp",
        hf_pooler_type="cls_last_hidden_state_pooler",
        hf_model_pretrained=False,
        context_length=text.context_length,
    )
    # open_clip's TimmModel does not pass image_size on to timm: give timm the spec's size while it builds
    create = timm.create_model
    with mock.patch.object(timm, "create_model", lambda *a, **kw: create(*a, **kw, img_size=spec.input_size)):
        model = CustomTextCLIP(embed_dim=spec.proj_dim, vision_cfg=vision_cfg, text_cfg=text_cfg)
    randomize_(model)
    path = folder / "open_clip_pytorch_model.bin"
    torch.save(model.state_dict(), path)
    return model, path, bert_dir
