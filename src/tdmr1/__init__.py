"""tdmr1: TDM-R1, reinforcement learning for few-step diffusion models from non-differentiable rewards."""

__version__ = "0.1.0"
