-- chinwag schema, version 5: read markers (protocol §8), one per account and
-- conversation: '#' || room, or '@' || the other party's principal. Everything
-- up to `upto` in that conversation was read on some device of the account.

CREATE TABLE read_markers (
    account      TEXT    NOT NULL,
    conversation TEXT    NOT NULL,
    upto         INTEGER NOT NULL,
    PRIMARY KEY (account, conversation)
) WITHOUT ROWID;
