-- Account safety (issue 9).

-- password_version counts the changes of the password (a change or a
-- reset, not a rehash of the same password). A password change writes
-- only if it is still the version whose password it checked, so a change
-- begun before a reset cannot undo the reset.
ALTER TABLE users ADD COLUMN password_version bigint NOT NULL DEFAULT 0;

-- keyed is true for a recovery code hashed with HMAC-SHA-256 under a key
-- derived from the master key; false for the plain SHA-256 of earlier
-- releases, rewritten as keyed when the service starts.
ALTER TABLE recovery_codes ADD COLUMN keyed boolean NOT NULL DEFAULT false;

-- A request for a reset or confirmation mail, by address. The request
-- path only inserts one row, whether or not the address has an account;
-- the outbox worker resolves it (finds the account, makes the token and
-- queues the mail) and deletes it.
CREATE TABLE mail_requests (
    id         uuid        PRIMARY KEY,
    kind       text        NOT NULL CHECK (kind IN ('confirm', 'reset')),
    email      text        NOT NULL,
    created_at timestamptz NOT NULL
);

CREATE INDEX mail_requests_created_at_idx ON mail_requests (created_at);
