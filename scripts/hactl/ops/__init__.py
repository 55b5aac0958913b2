"""Operations on a running stack: scale, rolling update, drain, rotation waits, preflight checks,
verify. Pure planning (rollout_plan) is kept apart from the Docker and HTTP calls."""
