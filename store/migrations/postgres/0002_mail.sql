-- Mailed tokens (email confirmation, password reset, email change) and the
-- outbox of mails.

-- Only a token's hash is stored (SHA-256 over kind ":" token). A token is
-- used up by deleting its row; a newer token of a kind replaces the user's
-- older ones.
CREATE TABLE mail_tokens (
    hash       bytea       PRIMARY KEY,
    kind       text        NOT NULL CHECK (kind IN ('confirm', 'reset', 'email-change')),
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email      text        NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);

CREATE INDEX mail_tokens_user_kind_idx ON mail_tokens (user_id, kind);
CREATE INDEX mail_tokens_expires_at_idx ON mail_tokens (expires_at);

-- One row per mail, written in the transaction that makes its token.
-- payload is sealed under the master key (AES-256-GCM, bound to the id)
-- and dropped once the mail is sent or given up. While a worker holds a
-- mail, claim_id names its claim and next_attempt_at is the lease's end.
-- Workers claim due rows with SELECT … FOR UPDATE SKIP LOCKED.
CREATE TABLE mail_outbox (
    id              uuid        PRIMARY KEY,
    user_id         uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind            text        NOT NULL,
    recipient       text        NOT NULL,
    locale          text        NOT NULL,
    payload         bytea,
    created_at      timestamptz NOT NULL,
    next_attempt_at timestamptz NOT NULL,
    attempts        integer     NOT NULL DEFAULT 0,
    claim_id        text,
    last_error      text,
    sent_at         timestamptz,
    failed_at       timestamptz
);

CREATE INDEX mail_outbox_due_idx ON mail_outbox (next_attempt_at)
    WHERE sent_at IS NULL AND failed_at IS NULL;
CREATE INDEX mail_outbox_user_id_idx ON mail_outbox (user_id);
