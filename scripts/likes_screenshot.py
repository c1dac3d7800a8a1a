"""Screenshot of the likes page for the README (docs/images/likes_page.png), with headless Chromium.

Rollouts of the shipped 4-step student on ShapesEval training prompts; a scripted person has liked the
images that hold a red shape in the earlier batches (so the like-rate curve is real labels of the
student's images) and has labelled the first group of the batch on screen.

    python scripts/likes_screenshot.py [--out docs/images/likes_page.png] [--chromium chromium]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from tdmr1.diffusion.sampling import SamplingConfig
from tdmr1.models.embedded import EmbeddedT2I
from tdmr1.pipelines.generate import generate_images
from tdmr1.rewards.likes import LikesReward, _Item
from tdmr1.rewards.protocol import image_hash, png_bytes
from tdmr1.utils.grid import save_grid
from tdmr1.worlds import get_world


def is_red(image: np.ndarray) -> bool:
    close = np.abs(image.astype(int) - np.array([220, 40, 40])).sum(axis=-1) < 60
    return bool(close.sum() >= 12)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="docs/images/likes_page.png")
    ap.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    args = ap.parse_args()
    world = get_world("shapes")
    model = EmbeddedT2I.load("checkpoints/shapes/tdm4").eval()
    sampling = SamplingConfig(**model.meta["sampling"])
    pool = world.training_prompts()
    rng = np.random.default_rng(0)
    groups, size = 3, 6
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "likes-demo"
        grid = world.grid_prompts()[:8]
        save_grid(generate_images(model, grid, list(range(len(grid))), sampling), run / "samples" / "before.png")
        reward = LikesReward(run_dir=run, port=0, start=False)
        for it in range(7):  # earlier batches, labelled by the scripted rule
            prompts = [pool[i]["prompt"] for i in rng.integers(0, len(pool), groups) for _ in range(size)]
            images = generate_images(model, prompts, [it * 1000 + k for k in range(len(prompts))], sampling)
            for img, p in zip(images, prompts, strict=True):
                reward.store.put(reward.run, it, p, image_hash(img), int(is_red(img)))
        digests = [image_hash(img) for img in images]
        items = [_Item(d, p) for d, p in zip(digests, prompts, strict=True)]
        reward.session.publish(7, items, {d: png_bytes(img) for d, img in zip(digests, images, strict=True)})
        for k in range(size):  # the first group is done
            reward.session.label(digests[k], prompts[k], int(is_red(images[k])))
        url = reward.start()
        raw = Path(tmp) / "shot.png"
        subprocess.run(
            [args.chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--hide-scrollbars", "--window-size=1180,630", "--virtual-time-budget=4000",
             f"--screenshot={raw}", url],
            check=True, timeout=120, capture_output=True,
        )  # fmt: skip
        reward.stop()
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.open(raw).convert("RGB").quantize(colors=128).save(out, optimize=True)
    print(f"wrote {out} ({out.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
