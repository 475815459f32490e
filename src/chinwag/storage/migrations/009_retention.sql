-- chinwag schema, version 7: retention (issue 17). Messages older than their
-- conversation's retention are deleted by the server in the background; these
-- indexes find the expired ones of one room, and the expired DMs, without
-- reading the messages that are kept.
CREATE INDEX messages_room_ts ON messages (room, ts_ms) WHERE room IS NOT NULL;
CREATE INDEX messages_dm_ts ON messages (ts_ms) WHERE recipient IS NOT NULL;
