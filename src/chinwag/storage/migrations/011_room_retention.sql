-- chinwag schema: a room's own retention (issue 17). Its owner (or an admin)
-- sets how many days the room's messages are kept; NULL: only the server's
-- retention settings apply. The purge keeps the shorter of the two.
ALTER TABLE rooms ADD COLUMN retention_days INTEGER CHECK (retention_days > 0);
