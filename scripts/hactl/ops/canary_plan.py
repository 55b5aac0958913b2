"""Pure planning of a canary rollout: the traffic steps and the canary replicas each one needs.

`--canary 10,50,100`: the canary gets 10 % of new clients, then 50 %, then all of them; each step
is judged (canary_analysis.py) before the next. The last step must be 100: only a release that
has carried all the traffic is promoted. `--canary 100` is blue/green: one switch, judged the
same way, and switched back if it fails. The canary runs enough replicas for its share of the
traffic (the stable side keeps all of its replicas until the promotion).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from hactl.errors import InvalidInputError

FULL = 100


@dataclass(frozen=True)
class CanaryStep:
    index: int  # 1-based
    weight: int  # percent of new clients sent to the canary
    replicas: int  # canary replicas running during the step


def parse_steps(text: str) -> tuple[int, ...]:
    """ "10,50,100" -> (10, 50, 100): whole percentages, rising, ending at 100."""
    try:
        steps = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as error:
        raise InvalidInputError(
            f"--canary {text!r}: steps are whole percentages separated by commas",
            "for example --canary 10,50,100",
        ) from error
    if not steps or any(not 0 < s <= FULL for s in steps):
        raise InvalidInputError(f"--canary {text!r}: every step must be between 1 and 100")
    if any(b <= a for a, b in itertools.pairwise(steps)):
        raise InvalidInputError(f"--canary {text!r}: steps must rise")
    if steps[-1] != FULL:
        raise InvalidInputError(
            f"--canary {text!r}: the last step must be 100",
            "a release is promoted only after it has carried all the traffic",
        )
    return steps


def replicas_for(weight: int, stable_replicas: int) -> int:
    """Canary replicas for a share of the traffic: the stable side's count scaled, at least 1."""
    return max(1, math.ceil(stable_replicas * weight / FULL))


def plan_steps(steps: tuple[int, ...], stable_replicas: int) -> tuple[CanaryStep, ...]:
    return tuple(
        CanaryStep(index=i + 1, weight=w, replicas=replicas_for(w, stable_replicas))
        for i, w in enumerate(steps)
    )
