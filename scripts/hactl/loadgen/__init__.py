"""The open-loop load generator and the check that every acknowledged write was stored once."""
