"""encoderzoo.text: the text towers of image-text entries (BiomedCLIP's PubMedBERT, MedSigLIP's SigLIP text
transformer) in plain PyTorch, their tokenizers, checkpoint converters and zero-shot prompts.

``Encoder.encode_text``, ``Encoder.tokenize`` and ``Encoder.similarity`` are the public entry points (they delegate
to the encoder's ``TextTower``, ``encoder.text``); load an image-text entry with ``encoderzoo.load(name, text=True)``.
"""

from .bert import BertTextTower
from .convert import convert_text
from .errors import NoTextTowerError, TokenizerError
from .prompts import PromptSet, default_prompt_file, load_prompts
from .siglip import SiglipTextTower
from .tokenizer import SAVED_SUBFOLDER, TextTokenizer, TokenizerSource
from .tower import TextTower, image_text_logits
from .towers import build_text_tower, set_text_attention

__all__ = [
    "SAVED_SUBFOLDER",
    "BertTextTower",
    "NoTextTowerError",
    "PromptSet",
    "SiglipTextTower",
    "TextTokenizer",
    "TextTower",
    "TokenizerError",
    "TokenizerSource",
    "build_text_tower",
    "convert_text",
    "default_prompt_file",
    "image_text_logits",
    "load_prompts",
    "set_text_attention",
]
