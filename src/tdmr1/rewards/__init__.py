"""Rewards: everything that scores generated images implements the protocol of ``tdmr1.reward_protocol``."""

from tdmr1.reward_protocol import Reward, RewardOutput, validate_images

__all__ = ["Reward", "RewardOutput", "validate_images"]
