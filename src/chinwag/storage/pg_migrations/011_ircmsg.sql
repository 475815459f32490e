-- chinwag schema (PostgreSQL): a notice (issue 19, ircmsg), as SQLite's
-- 015_ircmsg.sql. A message sent as a notice is stored, counted and delivered
-- as any message; true here makes it shown as a notice, never answered automatically.
ALTER TABLE messages ADD COLUMN notice BOOLEAN NOT NULL DEFAULT false;

-- A read marker set by time (IRC MARKREAD), as SQLite's 015_ircmsg.sql: the time
-- the client gave (ms) beside `upto`. Never decreases; NULL: only ever set by id.
ALTER TABLE read_markers ADD COLUMN ts_ms BIGINT;

-- An IRC draft/multiline message's concat points (ircmsg), as SQLite's 015_ircmsg.sql:
-- the offsets in `body` where a line was joined to the one before without a newline.
ALTER TABLE messages ADD COLUMN concat TEXT NOT NULL DEFAULT '';
