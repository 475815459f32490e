-- chinwag schema, version 2 (PostgreSQL): the parts of protocol 1.1 (docs/protocol.md
-- §10) this store keeps. Replies and mentions are stored with their message,
-- read markers and the DM receipts setting per account. The event columns
-- (kind, target, edited_ms, deleted) exist so a row reads the same as on
-- SQLite; edits, deletions, reactions and search are not there yet on
-- PostgreSQL (the store refuses them), so they stay NULL/false.
ALTER TABLE messages ADD COLUMN kind TEXT;
ALTER TABLE messages ADD COLUMN target BIGINT;
ALTER TABLE messages ADD COLUMN reply_to BIGINT;
ALTER TABLE messages ADD COLUMN edited_ms BIGINT;
ALTER TABLE messages ADD COLUMN deleted BOOLEAN NOT NULL DEFAULT FALSE;
-- The display nicks a message mentions, space-separated ('' for none).
ALTER TABLE messages ADD COLUMN mentions TEXT NOT NULL DEFAULT '';

CREATE TABLE read_markers (
    account      TEXT   NOT NULL,
    conversation TEXT   NOT NULL,
    upto         BIGINT NOT NULL,
    PRIMARY KEY (account, conversation)
);

ALTER TABLE accounts ADD COLUMN receipts BOOLEAN NOT NULL DEFAULT FALSE;
