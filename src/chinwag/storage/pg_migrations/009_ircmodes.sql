-- chinwag schema (PostgreSQL): a room's key and member limit (issue 19, branch
-- ircmodes), as SQLite's migration of that name. NULL: none.
ALTER TABLE rooms ADD COLUMN room_key TEXT CHECK (room_key <> '');
ALTER TABLE rooms ADD COLUMN member_limit INTEGER CHECK (member_limit > 0);
