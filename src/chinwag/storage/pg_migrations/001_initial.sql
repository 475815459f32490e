-- chinwag schema, version 1 (PostgreSQL): the SQLite schema of versions 1 and 2
-- in one step. Applied once, tracked in chinwag_schema.
-- Principals are the hub's strings: 'a:<key>' for an account, 'g:<session>' for a guest.

CREATE TABLE accounts (
    key           TEXT    PRIMARY KEY,          -- casefolded nick: the identity
    nick          TEXT    NOT NULL,             -- display form
    skeleton      TEXT    NOT NULL,             -- TR39 skeleton of key (confusable check)
    password_hash TEXT    NOT NULL,             -- argon2id; '' once deleted
    created_ms    BIGINT  NOT NULL,
    deleted       BOOLEAN NOT NULL DEFAULT FALSE,  -- a deleted account keeps its nick reserved
    bot           BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX accounts_skeleton ON accounts (skeleton);

-- Ids come from the sequence and are never reused. Every write transaction
-- takes one advisory lock first (see storage/postgres.py), so ids commit in
-- id order on every node, as on SQLite.
CREATE TABLE messages (
    id             BIGSERIAL PRIMARY KEY,
    ts_ms          BIGINT NOT NULL,
    sender         TEXT   NOT NULL,
    sender_nick    TEXT   NOT NULL,
    room           TEXT,                        -- set for a room message
    recipient      TEXT,                        -- set for a DM
    recipient_nick TEXT,
    body           TEXT   NOT NULL,
    cid            TEXT,
    CHECK ((room IS NULL) <> (recipient IS NULL))
);
CREATE INDEX messages_room ON messages (room, id) WHERE room IS NOT NULL;
CREATE INDEX messages_recipient ON messages (recipient, id, sender) WHERE recipient IS NOT NULL;
CREATE INDEX messages_sender ON messages (sender, id) WHERE recipient IS NOT NULL;
CREATE INDEX messages_pair ON messages (sender, recipient, id) WHERE recipient IS NOT NULL;

CREATE TABLE dedupe (
    dedupe_key TEXT   NOT NULL,
    cid        TEXT   NOT NULL,
    message_id BIGINT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    ts_ms      BIGINT NOT NULL,
    PRIMARY KEY (dedupe_key, cid)
);
CREATE INDEX dedupe_message ON dedupe (message_id);
CREATE INDEX dedupe_ts ON dedupe (ts_ms);

-- Membership intervals: the account sees room messages with from_id < id <= to_id
-- (to_id NULL: still a member). At most one open interval per (account, room).
CREATE TABLE memberships (
    account TEXT   NOT NULL,
    room    TEXT   NOT NULL,
    from_id BIGINT NOT NULL,
    to_id   BIGINT,
    PRIMARY KEY (account, room, from_id),
    CHECK (to_id IS NULL OR to_id > from_id)
);
CREATE UNIQUE INDEX memberships_open ON memberships (account, room) WHERE to_id IS NULL;
CREATE INDEX memberships_room_open ON memberships (room) WHERE to_id IS NULL;

CREATE TABLE cursors (
    account TEXT   NOT NULL,
    device  TEXT   NOT NULL,
    cursor  BIGINT NOT NULL,
    PRIMARY KEY (account, device)
);

CREATE TABLE invites (
    token_hash TEXT   PRIMARY KEY,
    uses_left  BIGINT NOT NULL CHECK (uses_left >= 0),
    expires_ms BIGINT,
    created_ms BIGINT NOT NULL
);
