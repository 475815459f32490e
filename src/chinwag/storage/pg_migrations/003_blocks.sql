-- chinwag schema (PostgreSQL): blocks (issue 16), as SQLite's 007_blocks.sql.
-- An account (`blocker`, its principal) blocks a nick (`blocked`, its
-- casefolded key); `nick` is the nick as shown when the block was made.

CREATE TABLE blocks (
    blocker    TEXT   NOT NULL,
    blocked    TEXT   NOT NULL,
    nick       TEXT   NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (blocker, blocked)
);
