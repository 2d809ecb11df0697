-- Accounts, sessions, refresh tokens, signing keys and avatars.
-- Times are text in one fixed-width UTC form, 2006-01-02T15:04:05.000000Z,
-- so that text order is time order. Booleans are 0/1. Ids are UUID text.
-- STRICT tables reject a value of the wrong type instead of storing it.

CREATE TABLE users (
    id                 TEXT    PRIMARY KEY NOT NULL,
    account_type       TEXT    NOT NULL CHECK (account_type IN ('secret', 'password')),
    name               TEXT    NOT NULL,
    username           TEXT,
    email              TEXT,
    email_confirmed    INTEGER NOT NULL DEFAULT 0,
    bio                TEXT,
    locale             TEXT    NOT NULL,
    timezone           TEXT    NOT NULL,
    location           TEXT,
    birth_date         TEXT,
    has_avatar         INTEGER NOT NULL DEFAULT 0,
    two_factor_enabled INTEGER NOT NULL DEFAULT 0,
    admin              INTEGER NOT NULL DEFAULT 0,
    disabled           INTEGER NOT NULL DEFAULT 0,
    secret_hash        BLOB,
    secret_enc         BLOB,
    password_hash      TEXT,
    created_at         TEXT    NOT NULL,
    updated_at         TEXT    NOT NULL
) STRICT;

-- Email and username are unique case-insensitively. The store maps
-- violations of these two indexes, by name, to EMAIL_TAKEN / USERNAME_TAKEN.
-- (SQLite's lower() folds ASCII only; emails arrive lower-cased already and
-- usernames are ASCII.)
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));
CREATE UNIQUE INDEX users_username_lower_key ON users (lower(username));
CREATE UNIQUE INDEX users_secret_hash_key ON users (secret_hash);

CREATE TABLE sessions (
    id         TEXT PRIMARY KEY NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    last_used  TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT,
    user_agent TEXT NOT NULL DEFAULT '',
    ip         TEXT NOT NULL DEFAULT ''
) STRICT;

CREATE INDEX sessions_user_id_idx ON sessions (user_id, created_at DESC);

CREATE TABLE refresh_tokens (
    hash          BLOB PRIMARY KEY NOT NULL,
    session_id    TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at    TEXT NOT NULL,
    expires_at    TEXT NOT NULL,
    rotated_at    TEXT,
    successor_enc BLOB
) STRICT, WITHOUT ROWID;

CREATE INDEX refresh_tokens_session_id_idx ON refresh_tokens (session_id);

CREATE TABLE signing_keys (
    id          TEXT PRIMARY KEY NOT NULL,
    private_enc BLOB NOT NULL,
    public_key  BLOB NOT NULL,
    created_at  TEXT NOT NULL,
    retired_at  TEXT
) STRICT;

CREATE TABLE avatars (
    user_id      TEXT PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    content_type TEXT NOT NULL,
    data         BLOB NOT NULL,
    etag         TEXT NOT NULL,
    updated_at   TEXT NOT NULL
) STRICT;
