-- chinwag schema (PostgreSQL): where each message may be seen, in the search
-- index (issue 15), as SQLite's 004_search.sql puts scope tokens in FTS5.
--
-- `scope` holds 'r:' || room for a room message, 'd:' || principal for each
-- party of a DM, and 's:' || sender. The search index covers `words` AND
-- `scope`, so one GIN scan intersects "has these words" with "is somewhere
-- the asker may look": a word found only in rooms the asker is not in reads
-- no rows (before, it read every row of the table). A folded word never holds
-- ':', so a token never equals a word. The search SQL checks visibility on the
-- row again.
ALTER TABLE messages ADD COLUMN scope TEXT[];
DROP INDEX messages_words;
CREATE INDEX messages_search ON messages USING GIN (words, scope) WHERE words IS NOT NULL;

-- The messages stored before this migration get their `scope` from `chinwag`
-- at its next start, in batches by id (`done` < id <= `upto`), one transaction
-- each, resumed where it stopped; the row is deleted when all have theirs.
CREATE TABLE search_scope_backfill (
    done BIGINT NOT NULL,
    upto BIGINT NOT NULL
);
INSERT INTO search_scope_backfill (done, upto)
SELECT 0, max(id) FROM messages HAVING max(id) IS NOT NULL;
