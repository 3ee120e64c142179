"""Click arrival rates over time: the square wave and the ramp of the autoscaling experiment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class Phase(Protocol):
    """Clicks/s at each second of a phase of the load."""

    @property
    def duration(self) -> float: ...

    def __call__(self, t: float) -> float: ...


@dataclass(frozen=True)
class SquareWave:
    """``low`` clicks/s, then ``high`` for ``high_for`` s of every ``period``, ``cycles`` times."""

    low: float
    high: float
    high_for: float
    period: float
    cycles: int
    lead_in: float = 30.0

    @property
    def duration(self) -> float:
        return self.lead_in + self.cycles * self.period

    def __call__(self, t: float) -> float:
        if t < self.lead_in or t >= self.duration:
            return self.low
        return self.high if (t - self.lead_in) % self.period < self.high_for else self.low


@dataclass(frozen=True)
class Ramp:
    """``low`` clicks/s, rising linearly to ``high`` over ``rise``, held, falling over ``fall``."""

    low: float
    high: float
    rise: float
    hold: float
    fall: float
    lead_in: float = 30.0
    tail: float = 90.0

    @property
    def duration(self) -> float:
        return self.lead_in + self.rise + self.hold + self.fall + self.tail

    def __call__(self, t: float) -> float:
        t -= self.lead_in
        if t < 0:
            return self.low
        if t < self.rise:
            return self.low + (self.high - self.low) * t / self.rise
        t -= self.rise
        if t < self.hold:
            return self.high
        t -= self.hold
        if t < self.fall:
            return self.high - (self.high - self.low) * t / self.fall
        return self.low
