"""The HPA-like autoscaler: `hpa` is the pure algorithm (no I/O, fake-clock testable), `policy`
reads the policy file, `metrics` samples Docker stats, `controller` runs the loop and scales."""
