-- Idempotency keys are kept for IDEMPOTENCY_TTL_HOURS (default 24 h), then purged by the
-- replicas; this index keeps that purge cheap.
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
