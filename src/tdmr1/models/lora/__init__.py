"""LoRA roles on one backbone: named adapters, merged fast copies, presets, role-aware checkpointing."""
