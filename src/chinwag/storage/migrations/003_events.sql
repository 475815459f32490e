-- chinwag schema, version 3: one event stream (protocol §8). Edits, deletions
-- and reactions are rows of `messages` too, so they take their ids from the same
-- sequence and every reader of the stream (backlog, cursors, delivery) covers
-- them. An event row copies its target's conversation: `room`, or for a DM
-- `sender` = who acted and `recipient` = the other party of the conversation.

-- NULL for a message; 'edit', 'delete', 'react' (on) or 'unreact' (off) for an event.
ALTER TABLE messages ADD COLUMN kind TEXT;
-- For an event: the message it is about.
ALTER TABLE messages ADD COLUMN target INTEGER;
-- For a message: the message it answers (same conversation).
ALTER TABLE messages ADD COLUMN reply_to INTEGER;
-- For a message: when it was last edited (its body is the latest one).
ALTER TABLE messages ADD COLUMN edited_ms INTEGER;
-- For a message: 1 once deleted; its body (and its edits' bodies) are then ''.
ALTER TABLE messages ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
-- For a message: the display nicks it mentions, space-separated ('' for none).
ALTER TABLE messages ADD COLUMN mentions TEXT NOT NULL DEFAULT '';

-- The events about one message (erasing the bodies of its edits).
CREATE INDEX messages_target ON messages (target) WHERE target IS NOT NULL;

-- The reactions that are on now: one per (message, person, emoji).
CREATE TABLE reactions (
    message_id INTEGER NOT NULL,
    who        TEXT    NOT NULL,   -- principal
    nick       TEXT    NOT NULL,   -- display nick when reacting
    emoji      TEXT    NOT NULL,
    event_id   INTEGER NOT NULL,   -- the event that put it on (the order of nicks)
    PRIMARY KEY (message_id, emoji, who)
) WITHOUT ROWID;
