-- chinwag schema: stored DM receipts (issue 15). How far `reader` (a principal)
-- has the DMs of `sender` (a principal) on a device (`delivered`) and has read
-- them (`read_upto`): the newest ids of the receipts sent while both had
-- receipts on. A later login of the sender gets them in `caught_up`.

CREATE TABLE receipt_state (
    sender    TEXT    NOT NULL,
    reader    TEXT    NOT NULL,
    delivered INTEGER NOT NULL DEFAULT 0,
    read_upto INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (sender, reader)
) WITHOUT ROWID;
