-- chinwag schema (PostgreSQL): stored DM receipts (issue 15), as SQLite's
-- 010_receipt_state.sql. How far `reader` has the DMs of `sender` on a device
-- (`delivered`) and has read them (`read_upto`).

CREATE TABLE receipt_state (
    sender    TEXT   NOT NULL,
    reader    TEXT   NOT NULL,
    delivered BIGINT NOT NULL DEFAULT 0,
    read_upto BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (sender, reader)
);
