-- chinwag schema, version 3 (PostgreSQL): moderation (issue 16, protocol §8),
-- the SQLite schema of version 7. Existing rooms get a row owned by nobody
-- (NULL): the server's admins govern them, as they govern the lobby.
CREATE TABLE rooms (
    name       TEXT    PRIMARY KEY,
    owner      TEXT,
    topic      TEXT    NOT NULL DEFAULT '',
    private    BOOLEAN NOT NULL DEFAULT FALSE,
    announce   BOOLEAN NOT NULL DEFAULT FALSE,
    created_ms BIGINT  NOT NULL
);
INSERT INTO rooms (name, owner, created_ms)
    SELECT room, NULL, (extract(epoch FROM now()) * 1000)::BIGINT
    FROM (SELECT room FROM memberships UNION SELECT room FROM messages WHERE room IS NOT NULL) r;

-- Standings: kind 'role' (value 'mod', or 'admin' in scope ''), 'ban', 'mute'
-- or 'invite'; scope is a room, or '' for the whole server.
CREATE TABLE standings (
    scope     TEXT   NOT NULL,
    principal TEXT   NOT NULL,
    kind      TEXT   NOT NULL,
    value     TEXT   NOT NULL DEFAULT '',
    until_ms  BIGINT,
    by_nick   TEXT   NOT NULL,
    reason    TEXT   NOT NULL DEFAULT '',
    ts_ms     BIGINT NOT NULL,
    PRIMARY KEY (scope, principal, kind)
);

CREATE TABLE audit (
    id     BIGSERIAL PRIMARY KEY,
    ts_ms  BIGINT NOT NULL,
    actor  TEXT   NOT NULL,
    action TEXT   NOT NULL,
    room   TEXT,
    target TEXT,
    reason TEXT   NOT NULL DEFAULT '',
    detail TEXT   NOT NULL DEFAULT ''
);
CREATE INDEX audit_room ON audit (room, ts_ms);
CREATE INDEX audit_ts ON audit (ts_ms);
