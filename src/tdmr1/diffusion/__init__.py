"""Rectified-flow maths and the deterministic samplers (no models, no training)."""
