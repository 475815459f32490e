-- chinwag schema, version 4: full-text search of messages (protocol §8).
-- An external-content FTS5 index: it holds the words, not a second copy of the
-- text. unicode61 with remove_diacritics 2 folds case and accents ("Café"
-- matches "cafe"). Only live messages are indexed: not events, not deleted
-- messages; an edit replaces the words of its message.
--
-- Column `scope` holds tokens for who may see a message, so that the index
-- itself intersects "has these words" with "is somewhere the asker may look":
-- 'r' || hex(room) for a room message, 'd' || hex(principal) for each party of
-- a DM, and 's' || hex(sender). Hex keeps them single tokens (room names hold
-- '-' and '_', which the tokenizer splits on). The SQL that reads the index
-- checks visibility on the row again.

CREATE VIEW messages_fts_source AS
SELECT id, body,
       CASE WHEN room IS NOT NULL THEN 'r' || hex(room)
            ELSE 'd' || hex(sender) || ' d' || hex(recipient) END
       || ' s' || hex(sender) AS scope
  FROM messages;

CREATE VIRTUAL TABLE messages_fts USING fts5(
    body,
    scope,
    content = 'messages_fts_source',
    content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2'
);

INSERT INTO messages_fts (rowid, body, scope)
SELECT id, body, scope FROM messages_fts_source
 WHERE id IN (SELECT id FROM messages WHERE kind IS NULL AND deleted = 0);

CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages
WHEN new.kind IS NULL AND new.deleted = 0
BEGIN
    INSERT INTO messages_fts (rowid, body, scope)
    SELECT id, body, scope FROM messages_fts_source WHERE id = new.id;
END;

-- An edit, a deletion, or a guest's DMs adopted by its new account: the old
-- entry goes, the new one (if the message is still live) comes.
CREATE TRIGGER messages_fts_update AFTER UPDATE OF body, sender, recipient ON messages
WHEN old.kind IS NULL AND old.deleted = 0
BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body, scope) VALUES (
        'delete', old.id, old.body,
        CASE WHEN old.room IS NOT NULL THEN 'r' || hex(old.room)
             ELSE 'd' || hex(old.sender) || ' d' || hex(old.recipient) END
        || ' s' || hex(old.sender));
    INSERT INTO messages_fts (rowid, body, scope)
    SELECT id, body, scope FROM messages_fts_source WHERE id = new.id AND new.deleted = 0;
END;

CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
WHEN old.kind IS NULL AND old.deleted = 0
BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body, scope) VALUES (
        'delete', old.id, old.body,
        CASE WHEN old.room IS NOT NULL THEN 'r' || hex(old.room)
             ELSE 'd' || hex(old.sender) || ' d' || hex(old.recipient) END
        || ' s' || hex(old.sender));
END;
