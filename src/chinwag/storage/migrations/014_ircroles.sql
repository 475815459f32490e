-- chinwag schema: room roles for guests, voice, topic lock and secret rooms
-- (issue 19, branch ircroles). topic_locked: only the owner and mods set the
-- topic (IRC +t; every room so far was). secret: unlisted for non-members (IRC
-- +s). guest: the guest session whose end undoes the room's locks (private,
-- announce, secret, topic lock), NULL when an account set them. A standing's
-- guest: the guest session that made it; it ends with that session.
ALTER TABLE rooms ADD COLUMN topic_locked INTEGER NOT NULL DEFAULT 1;
ALTER TABLE rooms ADD COLUMN secret INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rooms ADD COLUMN guest TEXT;
ALTER TABLE standings ADD COLUMN guest TEXT;
-- Who set the topic (a display nick) and when (IRC 333); NULL time: not known.
ALTER TABLE rooms ADD COLUMN topic_by TEXT NOT NULL DEFAULT '';
ALTER TABLE rooms ADD COLUMN topic_ms INTEGER;
