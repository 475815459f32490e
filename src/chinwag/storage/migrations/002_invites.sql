-- chinwag schema, version 2: invites (sign-up tokens for registration = invite).
-- Only the SHA-256 of a token is stored; the token itself lives in the invite.

CREATE TABLE invites (
    token_hash TEXT    PRIMARY KEY,                          -- hex sha256 of the token
    uses_left  INTEGER NOT NULL CHECK (uses_left >= 0),
    expires_ms INTEGER,                                      -- NULL: never expires
    created_ms INTEGER NOT NULL
) WITHOUT ROWID;
