"""Shared fixtures' machinery: start real stacks under their own compose project names."""
