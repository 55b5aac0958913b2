"""`hactl selfheal`: keep the recorded number of `web` replicas running and restart hung ones.

Docker restarts a crashed process and nothing else: a replica stopped with `docker kill` or
removed with `docker rm -f` stays gone, and an `unhealthy` or frozen one stays out of rotation.
This controller adds what a Kubernetes ReplicaSet and liveness probe do, for a Compose stack:

- config.py    settings from environment variables (safe defaults, like a liveness probe's)
- record.py    the one record of the desired state (`.env.rollout`: WEB_REPLICAS, the pause switch,
               the lease hactl holds while it scales or rolls out)
- decide.py    pure decisions: observations in, actions out (restart, start, create), back-off
- clone.py     the create request for a replacement, copied from a running sibling
- docker_api.py the handful of Docker Engine API calls it makes (through the socket proxy)
- probe.py     liveness probes over the stack network
- telemetry.py JSON event lines and Prometheus metrics
- controller.py the loop: observe, probe, decide, act

It imports nothing from hactl that needs python-on-whales, so its image holds only httpx and
prometheus-client (compose/selfheal/Dockerfile).
"""
