"""The teacher's training data: random training-lexicon words rendered, captioned with the exact text.

Unlike shapes, the captions are not loose: every caption is the template prompt of the word it shows
(``a sign that says "KQTA"``), as the spec asks.
"""

from __future__ import annotations

import numpy as np

from tdmr1.worlds.glyphs.lexicon import training_lexicon
from tdmr1.worlds.glyphs.prompts import make_prompt
from tdmr1.worlds.glyphs.render import render_texts


def sample_training_words(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` training words drawn uniformly with replacement (``rng.integers(4000, size=n)``)."""
    lexicon = training_lexicon()
    return [lexicon[i] for i in rng.integers(len(lexicon), size=n)]


def sample_training_batch(rng: np.random.Generator, n: int) -> tuple[np.ndarray, list[str]]:
    """``n`` training examples: uint8 images [n, 32, 64, 3] and their captions."""
    words = sample_training_words(rng, n)
    return render_texts(words), [make_prompt(w) for w in words]
