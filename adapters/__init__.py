"""encoderzoo.adapters: cheap adaptation of zoo encoders (LoRA, ACE-HGNN, visual prompts).

Installed as ``encoderzoo.adapters`` (the bare name ``adapters`` belongs to an unrelated PyPI package).
The adapter modules land with their own issue; the spec fields they read (``lora_targets``,
``prompt_insertion``) are already part of every ``EncoderSpec``.
"""
