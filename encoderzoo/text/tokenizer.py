"""Tokenizers of the text towers, read from the same pinned repository as the weights.

Run-time library: ``transformers`` (``AutoTokenizer``; install ``encoderzoo[text]``). The two towers' tokenizers
are defined by their repositories' ``tokenizer_config.json`` (BiomedCLIP: PubMedBERT's uncased WordPiece
``BertTokenizer``; MedSigLIP: SigLIP's SentencePiece tokenizer, which also lower-cases and strips punctuation
and needs ``sentencepiece`` and ``protobuf``). Re-implementing them would risk exactly the silent token
mismatches a zero-shot score cannot survive, so the library that defines them runs them. The towers themselves
are plain PyTorch.

Every text becomes ``context_length`` ids: truncated, then padded to the full length (``padding="max_length"``),
as open_clip's ``HFTokenizer`` (BiomedCLIP) and SigLIP's training (MedSigLIP) do.
"""

from __future__ import annotations

import html
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..atomic import atomic_write
from ..errors import WeightsError
from ..spec import EncoderSpec, TextSpec
from .errors import TokenizerError

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "tokenizer.model",
    "config.json",
)
"""Files a tokenizer may be made of (``config.json`` names the tokenizer class when ``tokenizer_config.json``
does not). Only these are fetched, never the weights."""
SAVED_SUBFOLDER = "tokenizer"
"""Where ``save_pretrained`` puts a copy of the tokenizer files, inside an encoder folder."""


@dataclass(frozen=True)
class TokenizerSource:
    """Where the tokenizer files of a text tower are: a Hub repository at a revision (optionally a subfolder
    of it), or a local folder."""

    repo_id: str | None = None
    revision: str = "main"
    subfolder: str | None = None
    local_dir: Path | None = None
    gated: bool = False

    @classmethod
    def for_spec(cls, spec: EncoderSpec) -> TokenizerSource:
        """The canonical tokenizer of an image-text entry."""
        assert spec.text is not None
        return cls(repo_id=spec.text.tokenizer_repo, revision=spec.text.tokenizer_revision, gated=spec.gated)

    def describe(self) -> str:
        if self.local_dir is not None:
            return str(self.local_dir)
        sub = f"/{self.subfolder}" if self.subfolder else ""
        return f"{self.repo_id}@{self.revision}{sub}"

    def folder(self) -> Path:
        """A local folder holding the tokenizer files (fetched into the Hugging Face cache when allowed)."""
        if self.local_dir is not None:
            folder = Path(self.local_dir).expanduser()
            if not folder.is_dir():
                raise TokenizerError(f"tokenizer folder {folder} does not exist")
            return folder
        from ..weights import snapshot_from_hub

        prefix = f"{self.subfolder}/" if self.subfolder else ""
        try:
            root = snapshot_from_hub(
                str(self.repo_id), self.revision, [prefix + f for f in TOKENIZER_FILES], gated=self.gated
            )
        except WeightsError as err:
            raise type(err)(
                f"tokenizer files of {self.describe()}: {err} (For the tokenizer, pass tokenizer=FOLDER with "
                "the repository's tokenizer files instead of weights=PATH.)"
            ) from err
        return root / self.subfolder if self.subfolder else root


def _clean_whitespace(text: str) -> str:
    """open_clip's ``whitespace`` cleaning without ftfy: html-unescape twice, collapse whitespace, strip."""
    return " ".join(html.unescape(html.unescape(text)).split())


class TextTokenizer:
    """Texts -> ``(N, context_length)`` int64 token ids for one text tower."""

    def __init__(self, folder: str | os.PathLike[str], text: TextSpec) -> None:
        try:
            from transformers import AutoTokenizer
        except ImportError as err:
            raise TokenizerError(
                "text towers tokenize with the transformers library, which is not installed: "
                "pip install 'encoderzoo[text]'"
            ) from err
        self.folder = Path(folder)
        self.text = text
        present = sorted(p.name for p in self.folder.iterdir() if p.name in TOKENIZER_FILES)
        if not any(
            name in present for name in ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "tokenizer.model")
        ):
            raise TokenizerError(
                f"{self.folder} holds no tokenizer vocabulary (found {present or 'nothing'}; expected one of "
                "tokenizer.json, vocab.txt, spiece.model ...)"
            )
        try:
            self.hf = AutoTokenizer.from_pretrained(str(self.folder), local_files_only=True)
        except (OSError, ValueError, ImportError) as err:
            raise TokenizerError(f"cannot build the tokenizer from {self.folder} ({present}): {err}") from err
        size = len(self.hf)
        if size > text.vocab_size:
            raise TokenizerError(
                f"the tokenizer in {self.folder} has {size} tokens but the text tower embeds only {text.vocab_size}: "
                "these tokenizer files belong to another model"
            )
        if text.pad_token_id is not None and self.hf.pad_token_id != text.pad_token_id:
            raise TokenizerError(
                f"the tokenizer in {self.folder} pads with id {self.hf.pad_token_id}, the text tower masks id "
                f"{text.pad_token_id}: these tokenizer files belong to another model"
            )

    def __call__(self, texts: str | Sequence[str]) -> torch.Tensor:
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        if not texts or not all(isinstance(t, str) for t in texts):
            raise ValueError("texts must be a non-empty list of strings")
        if self.text.text_cleaning == "whitespace":
            texts = [_clean_whitespace(t) for t in texts]
        out = self.hf(
            texts, padding="max_length", max_length=self.text.context_length, truncation=True, return_tensors="pt"
        )
        return out["input_ids"].to(torch.int64)

    def save(self, target: str | os.PathLike[str]) -> Path:
        """Copy the tokenizer files (byte for byte) into ``target``."""
        target = Path(target)
        target.mkdir(parents=True, exist_ok=True)
        for name in TOKENIZER_FILES:
            source = self.folder / name
            if source.is_file():
                atomic_write(target / name, lambda tmp, source=source: shutil.copyfile(source, tmp))
        return target
