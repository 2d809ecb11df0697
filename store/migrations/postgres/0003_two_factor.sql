-- Two-factor authentication: the TOTP key (sealed), a pending key awaiting
-- confirmation, the last time step accepted; recovery codes and sign-in
-- challenges, both stored as SHA-256 hashes only.

ALTER TABLE users ADD COLUMN totp_key_enc bytea;
ALTER TABLE users ADD COLUMN totp_pending_enc bytea;
ALTER TABLE users ADD COLUMN totp_last_step bigint NOT NULL DEFAULT 0;

-- A recovery code is deleted when it is used.
CREATE TABLE recovery_codes (
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    hash       bytea       NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, hash)
);

-- A challenge is deleted when it is answered; a dead one (no attempts left)
-- or an expired one stays until its user's next challenge sweeps it.
CREATE TABLE two_factor_challenges (
    hash          bytea       PRIMARY KEY,
    user_id       uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    attempts_left integer     NOT NULL CHECK (attempts_left >= 0),
    user_agent    text        NOT NULL DEFAULT '',
    ip            text        NOT NULL DEFAULT ''
);

CREATE INDEX two_factor_challenges_user_id_idx ON two_factor_challenges (user_id, expires_at);
