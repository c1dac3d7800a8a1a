"""Small tokenizers over an embedded world's vocabulary: words (shapes) or characters (glyphs)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

PAD, UNK, BOS = "[PAD]", "[UNK]", "[BOS]"
SPECIALS = (PAD, UNK, BOS)


@dataclass
class WordTokenizer:
    """Whitespace/punctuation word tokenizer with a fixed vocabulary.

    ``mode="word"`` splits a prompt into lower-case words; ``mode="char"`` additionally spells the
    text between double quotes character by character (for text rendering). Every sequence starts
    with BOS so the empty (unconditional) prompt still has one real token.
    """

    vocab: list[str]
    max_length: int = 16
    mode: str = "word"

    def __post_init__(self) -> None:
        self.vocab = list(SPECIALS) + [w for w in self.vocab if w not in SPECIALS]
        self.index = {w: i for i, w in enumerate(self.vocab)}

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def split(self, text: str) -> list[str]:
        """Words of ``text`` (quoted spans spelled out in char mode)."""
        if self.mode == "char":
            parts = text.split('"')
            tokens: list[str] = []
            for i, part in enumerate(parts):
                if i % 2 == 1:  # inside quotes
                    tokens.append('"')
                    tokens.extend(f"#{c}" for c in part)
                    tokens.append('"')
                else:
                    tokens.extend(re.findall(r"[a-z0-9]+", part.lower()))
            return tokens
        return re.findall(r"[a-z0-9]+", text.lower())

    def unknown_words(self, text: str) -> list[str]:
        return [w for w in self.split(text) if w not in self.index]

    def encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids [B, L] and attention mask [B, L] (1 = real token); long prompts are truncated."""
        ids = torch.zeros(len(texts), self.max_length, dtype=torch.long)
        mask = torch.zeros(len(texts), self.max_length, dtype=torch.long)
        unk = self.index[UNK]
        for row, text in enumerate(texts):
            toks = [self.index[BOS]] + [self.index.get(w, unk) for w in self.split(text)]
            toks = toks[: self.max_length]
            ids[row, : len(toks)] = torch.tensor(toks)
            mask[row, : len(toks)] = 1
        return ids, mask

    def to_dict(self) -> dict:
        return {"vocab": self.vocab[len(SPECIALS) :], "max_length": self.max_length, "mode": self.mode}

    @classmethod
    def from_dict(cls, data: dict) -> WordTokenizer:
        return cls(vocab=list(data["vocab"]), max_length=int(data["max_length"]), mode=data.get("mode", "word"))
