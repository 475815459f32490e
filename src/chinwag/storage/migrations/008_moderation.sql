-- chinwag schema, version 7: moderation (issue 16, protocol §8).
-- Rooms get a row of their own. owner is a principal, or NULL for a room the
-- server's admins govern (the lobby, and every room that existed before this
-- version: nobody's claim to them can be proven, so the admins hold them
-- until an admin grants someone a role).
CREATE TABLE rooms (
    name       TEXT    PRIMARY KEY,
    owner      TEXT,
    topic      TEXT    NOT NULL DEFAULT '',
    private    INTEGER NOT NULL DEFAULT 0,
    announce   INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO rooms (name, owner, created_ms)
    SELECT DISTINCT room, NULL, CAST(strftime('%s', 'now') AS INTEGER) * 1000
    FROM memberships;
INSERT OR IGNORE INTO rooms (name, owner, created_ms)
    SELECT DISTINCT room, NULL, CAST(strftime('%s', 'now') AS INTEGER) * 1000
    FROM messages WHERE room IS NOT NULL;

-- Standings of a principal in a scope (a room, or '' for the whole server):
-- kind 'role' (value 'mod', or 'admin' in scope ''), 'ban', 'mute' or 'invite'.
-- until_ms NULL: until lifted.
CREATE TABLE standings (
    scope     TEXT    NOT NULL,
    principal TEXT    NOT NULL,
    kind      TEXT    NOT NULL,
    value     TEXT    NOT NULL DEFAULT '',
    until_ms  INTEGER,
    by_nick   TEXT    NOT NULL,
    reason    TEXT    NOT NULL DEFAULT '',
    ts_ms     INTEGER NOT NULL,
    PRIMARY KEY (scope, principal, kind)
) WITHOUT ROWID;

-- Every moderation and admin action: who, what, whom, where, when, why.
CREATE TABLE audit (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    ts_ms  INTEGER NOT NULL,
    actor  TEXT    NOT NULL,
    action TEXT    NOT NULL,
    room   TEXT,
    target TEXT,
    reason TEXT    NOT NULL DEFAULT '',
    detail TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX audit_room ON audit (room, ts_ms);
CREATE INDEX audit_ts ON audit (ts_ms);
