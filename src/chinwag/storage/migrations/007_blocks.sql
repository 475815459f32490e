-- chinwag schema: blocks (issue 16, protocol §8 "block"). An account (`blocker`,
-- its principal) blocks a nick (`blocked`, its casefolded key: an account's, or
-- the nick a guest uses): nothing sent under it reaches the blocker. `nick` is
-- the nick as shown when the block was made, for the list.

CREATE TABLE blocks (
    blocker    TEXT    NOT NULL,
    blocked    TEXT    NOT NULL,
    nick       TEXT    NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (blocker, blocked)
) WITHOUT ROWID;
