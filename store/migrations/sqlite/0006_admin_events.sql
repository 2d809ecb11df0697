-- Administration and the security event log: when each account last
-- signed in, the security events, and the indexes of both admin listings
-- (accounts newest first; events newest first, all, per account or per
-- type). Signing-key retirement uses signing_keys.retired_at (0001).

ALTER TABLE users ADD COLUMN last_sign_in_at TEXT;

CREATE INDEX users_created_at_idx ON users (created_at DESC, id DESC);
CREATE INDEX users_admin_idx ON users (admin, disabled);

-- user_id has no foreign key: an account's events are deleted with it by
-- the store, and its account_deleted event outlives it.
CREATE TABLE events (
    id         TEXT PRIMARY KEY NOT NULL,
    type       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    user_id    TEXT,
    actor_id   TEXT,
    session_id TEXT,
    ip         TEXT NOT NULL DEFAULT '',
    user_agent TEXT NOT NULL DEFAULT ''
) STRICT;

CREATE INDEX events_created_at_idx ON events (created_at DESC, id DESC);
CREATE INDEX events_user_id_idx ON events (user_id, created_at DESC, id DESC);
CREATE INDEX events_type_idx ON events (type, created_at DESC, id DESC);
