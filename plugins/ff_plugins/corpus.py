"""A synthetic English-like corpus with learnable structure at several scales, generated deterministically.

Nothing can be downloaded at run time, so the demo trains on text from a small generative grammar:
spelling of a Zipf-distributed vocabulary (the long tail rewards larger models), per-paragraph topics
(nouns drawn from a topic-specific ranking), subject-verb agreement and a protagonist named again later
in the paragraph (longer-range copying).
"""

from __future__ import annotations

from bisect import bisect_left
from functools import lru_cache

import numpy as np

_ONSETS = ["b", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z",
           "br", "st", "tr", "sh", "ch", "pl"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ou", "ee"]
_CODAS = ["", "", "", "n", "r", "s", "t", "l", "m", "nd", "rk"]


def _words(rng: np.random.Generator, count: int, syllables: tuple[int, int]) -> list[str]:
    words: set[str] = set()
    ordered: list[str] = []
    while len(ordered) < count:
        n = int(rng.integers(syllables[0], syllables[1] + 1))
        word = "".join(
            _ONSETS[rng.integers(len(_ONSETS))] + _VOWELS[rng.integers(len(_VOWELS))]
            + _CODAS[rng.integers(len(_CODAS))]
            for _ in range(n)
        )
        if word not in words:
            words.add(word)
            ordered.append(word)
    return ordered


def _zipf(count: int, exponent: float = 1.1) -> list[float]:
    """Cumulative Zipf probabilities over `count` ranks (searched with one uniform draw per pick).

    A list of floats searched with bisect: the same answer as np.searchsorted, 5x faster per scalar draw.
    """
    weights = 1.0 / np.arange(1, count + 1) ** exponent
    return np.cumsum(weights / weights.sum()).tolist()


class _Grammar:
    def __init__(self, rng: np.random.Generator, topics: int):
        self.rng = rng
        self.nouns = _words(rng, 1200, (1, 3))
        self.verbs = _words(rng, 300, (1, 2))
        self.adjectives = _words(rng, 300, (1, 3))
        self.names = [w.capitalize() for w in _words(rng, 200, (2, 3))]
        self.topic_nouns = [rng.permutation(len(self.nouns)).tolist() for _ in range(topics)]
        self.p_nouns, self.p_small = _zipf(len(self.nouns)), _zipf(300)
        self.p_names = _zipf(len(self.names))

    def pick(self, words: list[str], cdf: list[float], order: list[int] | None = None) -> str:
        i = min(bisect_left(cdf, self.rng.random()), len(cdf) - 1)
        return words[order[i]] if order is not None else words[i]

    def sentence(self, topic: list[int], hero: str) -> str:
        noun = lambda: self.pick(self.nouns, self.p_nouns, topic)  # noqa: E731
        verb = lambda: self.pick(self.verbs, self.p_small)  # noqa: E731
        adj = lambda: self.pick(self.adjectives, self.p_small)  # noqa: E731
        name = lambda: self.pick(self.names, self.p_names)  # noqa: E731
        form = int(self.rng.integers(6))
        if form == 0:
            return f"{hero} {verb()}s the {adj()} {noun()}."
        if form == 1:
            return f"the {noun()} {verb()}s near the {noun()}."
        if form == 2:
            return f"{hero} and {name()} {verb()} the {noun()}."
        if form == 3:
            return f"a {adj()} {noun()} is {adj()}."
        if form == 4:
            return f"{name()} said that the {noun()}s {verb()} with {hero}."
        return f"the {adj()} {noun()}s {verb()} and the {noun()} {verb()}s."


@lru_cache(maxsize=4)
def synthetic_corpus(n_bytes: int = 3_000_000, seed: int = 1234, topics: int = 24) -> bytes:
    """About n_bytes of text, one paragraph per line; the same arguments always give the same bytes."""
    rng = np.random.default_rng(seed)
    grammar = _Grammar(rng, topics)
    paragraphs, size = [], 0
    while size < n_bytes:
        topic = grammar.topic_nouns[int(rng.integers(topics))]
        hero = grammar.pick(grammar.names, grammar.p_names)
        paragraph = " ".join(grammar.sentence(topic, hero) for _ in range(int(rng.integers(3, 8))))
        paragraphs.append(paragraph)
        size += len(paragraph) + 1
    return ("\n".join(paragraphs) + "\n").encode()[:n_bytes]
