-- chinwag schema, version 2 (PostgreSQL): protocol 1.1 (docs/protocol.md §10),
-- the SQLite schema of versions 3 to 6 in one step.
--
-- One event stream: edits, deletions and reactions are rows of `messages` too,
-- so they take their ids from the same sequence and every reader of the stream
-- (backlog, cursors, delivery) covers them. An event row copies its target's
-- conversation: `room`, or for a DM `sender` = who acted and `recipient` = the
-- other party.

-- NULL for a message; 'edit', 'delete', 'react' (on) or 'unreact' (off) for an event.
ALTER TABLE messages ADD COLUMN kind TEXT;
-- For an event: the message it is about.
ALTER TABLE messages ADD COLUMN target BIGINT;
-- For a message: the message it answers (same conversation).
ALTER TABLE messages ADD COLUMN reply_to BIGINT;
-- For a message: when it was last edited (its body is the latest one).
ALTER TABLE messages ADD COLUMN edited_ms BIGINT;
-- For a message: true once deleted; its body (and its edits' bodies) are then ''.
ALTER TABLE messages ADD COLUMN deleted BOOLEAN NOT NULL DEFAULT FALSE;
-- For a message: the display nicks it mentions, space-separated ('' for none).
ALTER TABLE messages ADD COLUMN mentions TEXT NOT NULL DEFAULT '';
-- Search: the words of a live message, folded (case and accents) by the server
-- in Python as SQLite's unicode61 tokenizer does; NULL for events and deleted
-- messages. Existing messages get theirs from `chinwag` at the next start.
ALTER TABLE messages ADD COLUMN words TEXT[];
CREATE INDEX messages_words ON messages USING GIN (words) WHERE words IS NOT NULL;

-- The events about one message (erasing the bodies of its edits).
CREATE INDEX messages_target ON messages (target) WHERE target IS NOT NULL;

-- The reactions that are on now: one per (message, person, emoji).
CREATE TABLE reactions (
    message_id BIGINT NOT NULL,
    who        TEXT   NOT NULL,   -- principal
    nick       TEXT   NOT NULL,   -- display nick when reacting
    emoji      TEXT   NOT NULL,
    event_id   BIGINT NOT NULL,   -- the event that put it on (the order of nicks)
    PRIMARY KEY (message_id, emoji, who)
);

-- Read markers, one per account and conversation ('room' or '@principal').
CREATE TABLE read_markers (
    account      TEXT   NOT NULL,
    conversation TEXT   NOT NULL,
    upto         BIGINT NOT NULL,
    PRIMARY KEY (account, conversation)
);

-- DM receipts are sent only between two accounts that both turned them on.
ALTER TABLE accounts ADD COLUMN receipts BOOLEAN NOT NULL DEFAULT FALSE;
