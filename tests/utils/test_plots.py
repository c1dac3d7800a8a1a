"""Training-curve PNGs: the surrogate-ranking panel appears only when a run logged it."""

from __future__ import annotations

import json

from PIL import Image

from tdmr1.utils.plots import plot_reward_curve


def _write_metrics(run_dir, rows):
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_reward_curve_adds_a_panel_for_surrogate_ranking(tmp_path):
    plain, ranked = tmp_path / "plain", tmp_path / "ranked"
    plain.mkdir()
    ranked.mkdir()
    rows = [{"step": i, "reward": 0.5 + 0.01 * i} for i in range(1, 6)]
    _write_metrics(plain, rows)
    _write_metrics(ranked, rows + [{"step": 5, "sur_rank": 0.3}, {"step": 10, "sur_rank": 0.4}])
    h_plain = Image.open(plot_reward_curve(plain, plain / "curve.png")).size[1]
    h_ranked = Image.open(plot_reward_curve(ranked, ranked / "curve.png")).size[1]
    assert h_ranked > 1.5 * h_plain


def test_reward_curve_without_metrics_is_none(tmp_path):
    assert plot_reward_curve(tmp_path, tmp_path / "curve.png") is None
    assert not (tmp_path / "curve.png").exists()
