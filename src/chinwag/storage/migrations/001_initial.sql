-- chinwag schema, version 1 (SQLite). Applied once, tracked by PRAGMA user_version.
-- Principals are the hub's strings: 'a:<key>' for an account, 'g:<session>' for a guest.

CREATE TABLE accounts (
    key           TEXT    PRIMARY KEY,          -- casefolded nick: the identity
    nick          TEXT    NOT NULL,             -- display form
    skeleton      TEXT    NOT NULL,             -- TR39 skeleton of key (confusable check)
    password_hash TEXT    NOT NULL,             -- argon2id; '' once deleted
    created_ms    INTEGER NOT NULL,
    deleted       INTEGER NOT NULL DEFAULT 0,   -- a deleted account keeps its nick reserved
    bot           INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX accounts_skeleton ON accounts (skeleton);

-- AUTOINCREMENT: ids are never reused, even after the newest messages are deleted.
CREATE TABLE messages (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    ts_ms          INTEGER NOT NULL,
    sender         TEXT    NOT NULL,
    sender_nick    TEXT    NOT NULL,
    room           TEXT,                        -- set for a room message
    recipient      TEXT,                        -- set for a DM
    recipient_nick TEXT,
    body           TEXT    NOT NULL,
    cid            TEXT,
    CHECK ((room IS NULL) <> (recipient IS NULL))
);
-- Room history and the room part of the backlog.
CREATE INDEX messages_room ON messages (room, id) WHERE room IS NOT NULL;
-- DMs received (backlog, quota); sender included so that counting is index-only.
CREATE INDEX messages_recipient ON messages (recipient, id, sender) WHERE recipient IS NOT NULL;
-- DMs sent (backlog, adopt).
CREATE INDEX messages_sender ON messages (sender, id) WHERE recipient IS NOT NULL;
-- One conversation (dm_history).
CREATE INDEX messages_pair ON messages (sender, recipient, id) WHERE recipient IS NOT NULL;

-- (sender, cid) seen recently: a repeat within the ttl returns the original message.
CREATE TABLE dedupe (
    dedupe_key TEXT    NOT NULL,
    cid        TEXT    NOT NULL,
    message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    ts_ms      INTEGER NOT NULL,
    PRIMARY KEY (dedupe_key, cid)
) WITHOUT ROWID;
CREATE INDEX dedupe_message ON dedupe (message_id);
CREATE INDEX dedupe_ts ON dedupe (ts_ms);  -- for purging expired entries

-- Membership intervals: the account sees room messages with from_id < id <= to_id
-- (to_id NULL: still a member). At most one open interval per (account, room).
CREATE TABLE memberships (
    account TEXT    NOT NULL,
    room    TEXT    NOT NULL,
    from_id INTEGER NOT NULL,
    to_id   INTEGER,
    PRIMARY KEY (account, room, from_id),
    CHECK (to_id IS NULL OR to_id > from_id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX memberships_open ON memberships (account, room) WHERE to_id IS NULL;
CREATE INDEX memberships_room_open ON memberships (room) WHERE to_id IS NULL;

-- The offline cursor of each (account, device): everything up to it was received.
CREATE TABLE cursors (
    account TEXT    NOT NULL,
    device  TEXT    NOT NULL,
    cursor  INTEGER NOT NULL,
    PRIMARY KEY (account, device)
) WITHOUT ROWID;
