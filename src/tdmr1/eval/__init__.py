"""Evaluation: benchmark sampling and scoring, paired comparisons, reports, scale-path evaluation."""
