-- chinwag schema, version 4: full-text search of messages (protocol §8).
-- An external-content FTS5 index over messages.body: it holds the words, not a
-- second copy of the text. unicode61 with remove_diacritics 2 folds case and
-- accents ("Café" matches "cafe"). Only live messages are indexed: not events,
-- not deleted messages; an edit replaces the words of its message.

CREATE VIRTUAL TABLE messages_fts USING fts5(
    body,
    content = 'messages',
    content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2'
);

INSERT INTO messages_fts (rowid, body)
SELECT id, body FROM messages WHERE kind IS NULL AND deleted = 0;

CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages
WHEN new.kind IS NULL AND new.deleted = 0
BEGIN
    INSERT INTO messages_fts (rowid, body) VALUES (new.id, new.body);
END;

-- An edit or a deletion: the old words go, the new ones (if any) come.
CREATE TRIGGER messages_fts_update AFTER UPDATE OF body ON messages
WHEN old.kind IS NULL AND old.deleted = 0
BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.id, old.body);
    INSERT INTO messages_fts (rowid, body) SELECT new.id, new.body WHERE new.deleted = 0;
END;

CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
WHEN old.kind IS NULL AND old.deleted = 0
BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.id, old.body);
END;
