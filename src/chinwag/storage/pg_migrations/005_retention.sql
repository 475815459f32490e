-- chinwag schema, version 3 (PostgreSQL): retention (issue 17), as SQLite's
-- version 7. These indexes find the expired messages of one room, and the
-- expired DMs, without reading the messages that are kept.
CREATE INDEX messages_room_ts ON messages (room, ts_ms) WHERE room IS NOT NULL;
CREATE INDEX messages_dm_ts ON messages (ts_ms) WHERE recipient IS NOT NULL;
