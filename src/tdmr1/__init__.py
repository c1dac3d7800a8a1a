"""tdmr1: TDM-R1, reinforcement learning for few-step diffusion models from non-differentiable rewards."""

import os

# OpenMP threads that spin-wait between parallel regions steal the core from everything else on a busy
# machine (measured: a batch-32 forward went from 0.32 s to 3.5 s beside another job, 0.65 s with
# PASSIVE). Set before torch loads its OpenMP runtime; a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
