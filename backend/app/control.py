"""Operator switches for one replica: `python -m app.control drain|unready|ready|status`.

Meant for `docker exec <container> python -m app.control drain` (hactl, tests). `drain` and
`unready` make `/readyz` answer 503 so the load balancer takes the replica out while it keeps
serving; `ready` removes `unready` and an operator's `draining` (never a SIGTERM drain).
"""

from __future__ import annotations

import json
import sys

from app import state


def status() -> dict[str, object]:
    return {
        "state_dir": str(state.state_dir()),
        "draining": state.is_set(state.DRAINING),
        "draining_by": state.read_flag(state.DRAINING),
        "draining_since": state.draining_since(),
        "unready": state.is_set(state.UNREADY),
    }


def run(command: str) -> int:
    if command == "drain":
        if not state.is_set(state.DRAINING):
            state.set_flag(state.DRAINING, state.BY_CONTROL)
    elif command == "unready":
        state.set_flag(state.UNREADY, "control")
    elif command == "ready":
        state.clear_flag(state.UNREADY)
        if state.read_flag(state.DRAINING) == state.BY_CONTROL:
            state.clear_flag(state.DRAINING)
        elif state.is_set(state.DRAINING):
            print(json.dumps(status()))
            print("replica is shutting down (SIGTERM); it stays draining", file=sys.stderr)
            return 1
    elif command != "status":
        print("usage: python -m app.control drain|unready|ready|status", file=sys.stderr)
        return 2
    print(json.dumps(status()))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    return run(args[0] if len(args) == 1 else "")


if __name__ == "__main__":
    sys.exit(main())
