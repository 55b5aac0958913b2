"""The timelines the k8s HPA tests play on kwok pods, replayed by hactl's HPA (no cluster).

These are the expectations the real controller is compared with in tests/k8s/test_k8s_hpa.py.
"""

from __future__ import annotations

import itertools

from tests.k8s.replay import IDLE_LOAD, SCALE_UP_LOAD, replay


def test_scale_up_3_to_7_to_10_in_15_s_steps() -> None:
    steps = replay(3, [(0, SCALE_UP_LOAD)], duration=120)
    assert [s.replicas for s in steps] == [7, 10]
    assert [s.at for s in steps] == [0.0, 15.0]
    # 7: +4 pods beats +100 % (6); 10: +100 % (14) would pass maxReplicas.
    assert [s.rule for s in steps] == ["ScaleUpLimit", "TooManyReplicas"]


def test_scale_down_waits_300_s_then_at_most_2_pods_a_minute_to_3() -> None:
    steps = replay(3, [(0, SCALE_UP_LOAD), (60, IDLE_LOAD)], duration=1000)
    assert [s.replicas for s in steps] == [7, 10, 8, 6, 4, 3]
    down = steps[2:]
    # The last high recommendation is at 45 s (the sync before the load dropped).
    assert down[0].at - 45 >= 300
    assert all(b.at - a.at >= 60 for a, b in itertools.pairwise(down))
    assert [s.rule for s in down[:3]] == ["ScaleDownLimit"] * 3
