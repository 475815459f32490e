-- chinwag schema (PostgreSQL): room roles for guests, voice, topic lock and
-- secret rooms (issue 19, branch ircroles), as SQLite's migration of that name.
ALTER TABLE rooms ADD COLUMN topic_locked BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE rooms ADD COLUMN secret BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE rooms ADD COLUMN guest TEXT;
ALTER TABLE standings ADD COLUMN guest TEXT;
-- Who set the topic (a display nick) and when (IRC 333); NULL time: not known.
ALTER TABLE rooms ADD COLUMN topic_by TEXT NOT NULL DEFAULT '';
ALTER TABLE rooms ADD COLUMN topic_ms BIGINT;
