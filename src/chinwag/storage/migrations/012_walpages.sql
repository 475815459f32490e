-- chinwag schema: cid dedupe on the message row (issue 18, branch walpages).
-- The `dedupe` table and its two indexes were three b-trees written for every
-- message with a cid, for a quarter of the WAL pages a commit writes. Now the
-- message itself holds whose cid it is (`dedupe_key`, set when `cid` is), and
-- one partial index finds a (dedupe_key, cid): its newest row within cid_ttl
-- is the original (older rows with that cid are ignored, so an expired cid may
-- name a new message). Nothing to purge: the entry goes with its message.
ALTER TABLE messages ADD COLUMN dedupe_key TEXT;

-- The entries still in the table (not purged yet) are carried over; a message
-- whose entry was purged or replaced keeps dedupe_key NULL: never a duplicate.
UPDATE messages
   SET dedupe_key = (SELECT d.dedupe_key FROM dedupe AS d WHERE d.message_id = messages.id)
 WHERE id IN (SELECT message_id FROM dedupe);

DROP TABLE dedupe;

CREATE INDEX messages_dedupe ON messages (dedupe_key, cid) WHERE dedupe_key IS NOT NULL;

-- The search index without the size of each row (columnsize = 0): only a
-- ranking function reads it, and search orders by id. One page fewer written
-- by every commit of messages (messages_fts_docsize). The index is built
-- again from the live messages, as migration 004 built it: on a large
-- database this is the long part (the store logs its progress).
DROP TABLE messages_fts;

CREATE VIRTUAL TABLE messages_fts USING fts5(
    body,
    scope,
    content = 'messages_fts_source',
    content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2',
    columnsize = 0
);

INSERT INTO messages_fts (rowid, body, scope)
SELECT id, body, scope FROM messages_fts_source
 WHERE id IN (SELECT id FROM messages WHERE kind IS NULL AND deleted = 0);
