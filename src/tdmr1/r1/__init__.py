"""TDM-R1: RL of a few-step generator from a black-box reward through a learned surrogate reward."""
