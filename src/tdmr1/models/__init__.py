"""Models: the embedded pixel-space model, scale-path backbones, checkpoints and LoRA roles."""
