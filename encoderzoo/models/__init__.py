"""Architectures encoderzoo implements itself (registered with timm so ``timm.create_model`` builds them)."""

from . import medvit  # noqa: F401  (registers medvit_v2_* with timm)
