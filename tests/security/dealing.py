"""Uniform choices for the attack rounds, so that every listed trick is tried.

Hypothesis favours the first items of `sampled_from` and repeats earlier
choices, which finds edge cases in structured data but leaves the end of a
long list of tricks untried in a few dozen examples. A `Dealer` instead deals
each list in a random order, every item once before any comes again, from a
seed that hypothesis draws, so a failing round is still replayed exactly.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TypeVar

from hypothesis import strategies as st

T = TypeVar("T")


class Dealer:
    def __init__(self, data: st.DataObject) -> None:
        self._random: random.Random = data.draw(st.randoms(use_true_random=True), label="seed")
        self._decks: dict[str, list] = {}

    def deal(self, deck: str, items: Sequence[T]) -> T:
        """Return the next item of the named deck, reshuffling the items when it runs out."""
        if not items:
            raise ValueError(f"the deck {deck!r} has no items to deal")
        cards = self._decks.setdefault(deck, [])
        if not cards:
            cards.extend(self._random.sample(list(items), len(items)))
        return cards.pop()

    def shuffled(self, items: Sequence[T]) -> list[T]:
        return self._random.sample(list(items), len(items))
