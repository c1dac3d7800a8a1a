"""ShapesEval: a small, exact analogue of GenEval (flat shapes on 32 x 32 images, exact checker)."""

from tdmr1.worlds.shapes.captions import (
    CaptionConfig,
    plan_caption,
    sample_caption,
    sample_training_batch,
    sample_training_example,
)
from tdmr1.worlds.shapes.checker import CheckResult, ShapesChecker, check_image, detect, detect_batch
from tdmr1.worlds.shapes.palette import CANVAS, CLASSES, COLOR_NAMES, COLORS, PLURALS, RELATIONS
from tdmr1.worlds.shapes.prompts import (
    TAGS,
    all_prompts,
    benchmark_suite,
    parse_prompt,
    read_prompt_file,
    training_prompts,
    validate_metadata,
)
from tdmr1.worlds.shapes.render import Obj, render_scene, render_scenes, shape_mask
from tdmr1.worlds.shapes.rules import Detection, Evaluation, evaluate, relative_position
from tdmr1.worlds.shapes.sampling import placement_ok, sample_scene, sample_scene_for
from tdmr1.worlds.shapes.world import make_world, render_oracle

__all__ = [
    "CANVAS",
    "CLASSES",
    "COLORS",
    "COLOR_NAMES",
    "PLURALS",
    "RELATIONS",
    "TAGS",
    "CaptionConfig",
    "CheckResult",
    "Detection",
    "Evaluation",
    "Obj",
    "ShapesChecker",
    "all_prompts",
    "benchmark_suite",
    "check_image",
    "detect",
    "detect_batch",
    "evaluate",
    "make_world",
    "parse_prompt",
    "placement_ok",
    "plan_caption",
    "read_prompt_file",
    "relative_position",
    "render_oracle",
    "render_scene",
    "render_scenes",
    "sample_caption",
    "sample_scene",
    "sample_scene_for",
    "sample_training_batch",
    "sample_training_example",
    "shape_mask",
    "training_prompts",
    "validate_metadata",
]
