"""Chaos scenarios under load: `faults` injects them, `analysis` judges a run (pure), `report`
writes JSON and the PNG timeline, `runner` ties them to a stack."""
