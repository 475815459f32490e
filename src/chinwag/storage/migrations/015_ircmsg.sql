-- chinwag schema: a notice (issue 19, ircmsg). A message sent as a notice (IRC's
-- NOTICE, a bot's status line) is stored, counted and delivered as any message;
-- 1 here makes it shown as a notice, and never answered automatically.
ALTER TABLE messages ADD COLUMN notice INTEGER NOT NULL DEFAULT 0;

-- A read marker set by time (IRC MARKREAD, ircmsg): the time the client gave
-- (ms), kept beside `upto` (the latest message at or before it). Never
-- decreases; NULL: only ever set by id.
ALTER TABLE read_markers ADD COLUMN ts_ms INTEGER;

-- An IRC draft/multiline message's line structure (ircmsg): the offsets (code
-- points, space-separated) in `body` where a line of the batch was joined to the
-- one before without a newline (draft/multiline-concat); '' for none.
ALTER TABLE messages ADD COLUMN concat TEXT NOT NULL DEFAULT '';
