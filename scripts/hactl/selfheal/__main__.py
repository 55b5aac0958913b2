"""`python3 -m hactl.selfheal`: the controller as the compose service runs it (settings from the
environment only; the image has no typer or python-on-whales). `hactl selfheal` is the same loop."""

from __future__ import annotations

import signal
import sys
import threading

from hactl.selfheal.config import ConfigError, config_from_env
from hactl.selfheal.controller import run


def main() -> int:
    try:
        cfg = config_from_env()
    except ConfigError as error:
        print(f"selfheal: {error}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    run(cfg, stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
