"""Sampling pipelines: embedded text-to-image sampling and few-step sampling on scale-path backbones."""
