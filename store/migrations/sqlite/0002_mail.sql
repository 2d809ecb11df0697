-- Mailed tokens (email confirmation, password reset, email change) and the
-- outbox of mails. Times are text as in 0001.

-- Only a token's hash is stored (SHA-256 over kind ":" token). A token is
-- used up by deleting its row; a newer token of a kind replaces the user's
-- older ones.
CREATE TABLE mail_tokens (
    hash       BLOB PRIMARY KEY NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('confirm', 'reset', 'email-change')),
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email      TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX mail_tokens_user_kind_idx ON mail_tokens (user_id, kind);
CREATE INDEX mail_tokens_expires_at_idx ON mail_tokens (expires_at);

-- One row per mail, written in the transaction that makes its token.
-- payload is sealed under the master key (AES-256-GCM, bound to the id)
-- and dropped once the mail is sent or given up. While a worker holds a
-- mail, claim_id names its claim and next_attempt_at is the lease's end.
CREATE TABLE mail_outbox (
    id              TEXT    PRIMARY KEY NOT NULL,
    user_id         TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind            TEXT    NOT NULL,
    recipient       TEXT    NOT NULL,
    locale          TEXT    NOT NULL,
    payload         BLOB,
    created_at      TEXT    NOT NULL,
    next_attempt_at TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    claim_id        TEXT,
    last_error      TEXT,
    sent_at         TEXT,
    failed_at       TEXT
) STRICT;

CREATE INDEX mail_outbox_due_idx ON mail_outbox (next_attempt_at)
    WHERE sent_at IS NULL AND failed_at IS NULL;
CREATE INDEX mail_outbox_user_id_idx ON mail_outbox (user_id);
