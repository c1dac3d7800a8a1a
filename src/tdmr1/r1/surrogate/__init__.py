"""TDM-R1's surrogate reward in two variants behind one interface (``loss``, ``clean_reward``,
``reward_direction``, ``after_step``); see docs/DESIGN_NOTES.md."""

from __future__ import annotations

from tdmr1.r1.surrogate.explicit import ExplicitSurrogate
from tdmr1.r1.surrogate.implicit import ImplicitSurrogate

Surrogate = ImplicitSurrogate | ExplicitSurrogate
