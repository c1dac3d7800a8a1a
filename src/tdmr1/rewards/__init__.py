"""Rewards: everything that scores generated images implements the protocol in `base`."""

from tdmr1.rewards.base import Reward, RewardOutput, validate_images

__all__ = ["Reward", "RewardOutput", "validate_images"]
