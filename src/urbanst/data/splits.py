"""Chronological splits: train, then validation, then test, by time step."""

from __future__ import annotations

from dataclasses import dataclass

from urbanst.errors import UrbanstError


@dataclass(frozen=True)
class SplitRule:
    """Fractions of the time axis for train and validation; the rest is test."""

    train: float = 0.7
    val: float = 0.1

    def __post_init__(self) -> None:
        if not (0 < self.train < 1 and 0 <= self.val < 1 and self.train + self.val < 1):
            raise UrbanstError(f"bad split {self.train}/{self.val}: need 0 < train, 0 <= val, train + val < 1")

    def boundaries(self, num_steps: int) -> tuple[int, int]:
        """First step of validation and first step of test."""
        return round(num_steps * self.train), round(num_steps * (self.train + self.val))

    def describe(self) -> str:
        test = 1 - self.train - self.val
        return f"chronological {self.train:.0%}/{self.val:.0%}/{test:.0%} by time step"

    def text(self) -> str:
        """The rule as ``parse`` reads it, e.g. ``"70/10/20"``."""
        return "/".join(f"{share * 100:g}" for share in (self.train, self.val, 1 - self.train - self.val))

    @classmethod
    def parse(cls, text: str) -> SplitRule:
        """Read ``"70/10/20"`` or ``"0.7,0.1"``."""
        try:
            parts = [float(p) for p in text.replace("/", ",").split(",") if p.strip()]
        except ValueError:
            raise UrbanstError(f"cannot read split {text!r}: use e.g. 70/10/20") from None
        if len(parts) == 3 and abs(sum(parts) - 100) < 1e-6:
            parts = [p / 100 for p in parts]
        if len(parts) not in (2, 3):
            raise UrbanstError(f"cannot read split {text!r}: use e.g. 70/10/20")
        return cls(parts[0], parts[1])
