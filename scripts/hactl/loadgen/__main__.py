"""`python -m hactl.loadgen`: open-loop constant-rate load from the command line."""

from hactl.loadgen.generator import main

raise SystemExit(main())
