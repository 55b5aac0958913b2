"""`python -m hactl.chaos`: the same run as `hactl chaos`, without typer."""

from hactl.chaos.runner import main

raise SystemExit(main())
