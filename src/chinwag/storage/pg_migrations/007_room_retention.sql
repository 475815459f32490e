-- chinwag schema (PostgreSQL): a room's own retention (issue 17), as SQLite's
-- migration of that name. NULL: only the server's retention settings apply.
ALTER TABLE rooms ADD COLUMN retention_days INTEGER CHECK (retention_days > 0);
