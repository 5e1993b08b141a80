"""The count of attacks and leaks over the whole test session, printed at its end.

Every attack of the suite, an HTTP request or a database statement aimed at
another tenant, counts as one attempt under its family and the place it ran
(backend and isolation level). A leak is counted before the test fails, so
the summary shows it even when a later test passes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Tally:
    attempts: Counter[tuple[str, str]] = field(default_factory=Counter)
    leaks: Counter[tuple[str, str]] = field(default_factory=Counter)

    def attempt(self, family: str, where: str, count: int = 1) -> None:
        self.attempts[family, where] += count

    def leak(self, family: str, where: str) -> None:
        self.leaks[family, where] += 1

    def lines(self) -> list[str]:
        """Return one line per family and place, then the totals."""
        lines = [
            f"{family} on {where}: attempts: {count}, leaks: {self.leaks[family, where]}"
            for (family, where), count in sorted(self.attempts.items())
        ]
        total = sum(self.attempts.values())
        lines.append(f"attempts: {total}, leaks: {sum(self.leaks.values())}")
        return lines


# One tally for the session: pytest runs the tests of this package in one process.
TALLY = Tally()
