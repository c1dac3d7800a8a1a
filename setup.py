"""Packaging hook (everything else is in pyproject.toml): the wheel carries the shipped checkpoints.

The repository keeps its models in ``checkpoints/<world>/<name>/`` (each under 20 MB); a built wheel
gets a copy under ``tdmr1/checkpoints/``, where ``tdmr1.models.checkpoints.shipped_root`` finds them, so
``tdmr1 demo`` works after ``pip install tdmr1-*.whl`` from any folder. Editable installs read the
repository's folder directly and copy nothing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

CHECKPOINTS = Path(__file__).resolve().parent / "checkpoints"


class BuildWithCheckpoints(build_py):
    """``build_py`` plus a copy of ``checkpoints/`` into the package (not for editable installs)."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False) or not CHECKPOINTS.is_dir():
            return
        target = Path(self.build_lib) / "tdmr1" / "checkpoints"
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(CHECKPOINTS, target)


setup(cmdclass={"build_py": BuildWithCheckpoints})
