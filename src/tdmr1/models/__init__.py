"""Models: the embedded pixel-space text-to-image backbone, its tokenizer and text encoder."""
