-- Accounts, sessions, refresh tokens, signing keys and avatars.
-- Times are timestamptz (UTC, microseconds); ids are UUIDs.

CREATE TABLE users (
    id                 uuid        PRIMARY KEY,
    account_type       text        NOT NULL CHECK (account_type IN ('secret', 'password')),
    name               text        NOT NULL,
    username           text,
    email              text,
    email_confirmed    boolean     NOT NULL DEFAULT false,
    bio                text,
    locale             text        NOT NULL,
    timezone           text        NOT NULL,
    location           text,
    birth_date         text,
    has_avatar         boolean     NOT NULL DEFAULT false,
    two_factor_enabled boolean     NOT NULL DEFAULT false,
    admin              boolean     NOT NULL DEFAULT false,
    disabled           boolean     NOT NULL DEFAULT false,
    secret_hash        bytea,
    secret_enc         bytea,
    password_hash      text,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL
);

-- Email and username are unique case-insensitively. The store maps
-- violations of these two indexes, by name, to EMAIL_TAKEN / USERNAME_TAKEN.
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));
CREATE UNIQUE INDEX users_username_lower_key ON users (lower(username));
CREATE UNIQUE INDEX users_secret_hash_key ON users (secret_hash);

CREATE TABLE sessions (
    id         uuid        PRIMARY KEY,
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL,
    last_used  timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz,
    user_agent text        NOT NULL DEFAULT '',
    ip         text        NOT NULL DEFAULT ''
);

CREATE INDEX sessions_user_id_idx ON sessions (user_id, created_at DESC);

CREATE TABLE refresh_tokens (
    hash          bytea       PRIMARY KEY,
    session_id    uuid        NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    rotated_at    timestamptz,
    successor_enc bytea
);

CREATE INDEX refresh_tokens_session_id_idx ON refresh_tokens (session_id);

CREATE TABLE signing_keys (
    id          text        PRIMARY KEY,
    private_enc bytea       NOT NULL,
    public_key  bytea       NOT NULL,
    created_at  timestamptz NOT NULL,
    retired_at  timestamptz
);

CREATE TABLE avatars (
    user_id      uuid        PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    content_type text        NOT NULL,
    data         bytea       NOT NULL,
    etag         text        NOT NULL,
    updated_at   timestamptz NOT NULL
);
