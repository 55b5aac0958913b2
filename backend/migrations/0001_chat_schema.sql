-- Conversations and their messages. `seq` gives a strict order for keyset pagination.
CREATE TABLE conversations (
    id          uuid PRIMARY KEY,
    title       text,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE messages (
    seq              bigserial PRIMARY KEY,
    id               uuid NOT NULL UNIQUE,
    conversation_id  uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    role             text NOT NULL CHECK (role IN ('user', 'assistant')),
    content          text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX messages_conversation_seq ON messages (conversation_id, seq);

-- One row per (client, Idempotency-Key). The primary key is what makes a concurrent duplicate
-- wait for the first request's transaction and then replay its stored response.
CREATE TABLE idempotency_keys (
    principal      text NOT NULL,
    key            text NOT NULL,
    request_hash   text NOT NULL,
    status_code    integer,
    response_body  text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (principal, key)
);
