-- chinwag schema, version 6: DM receipts (protocol §8) are sent only between
-- two accounts that both turned them on (default off).
ALTER TABLE accounts ADD COLUMN receipts INTEGER NOT NULL DEFAULT 0;
