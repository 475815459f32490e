-- chinwag schema (PostgreSQL): room roles for guests, voice, topic lock and
-- secret rooms (issue 19, branch ircroles), as SQLite's migration of that name.
ALTER TABLE rooms ADD COLUMN topic_locked BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE rooms ADD COLUMN secret BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE rooms ADD COLUMN guest TEXT;
ALTER TABLE standings ADD COLUMN guest TEXT;
