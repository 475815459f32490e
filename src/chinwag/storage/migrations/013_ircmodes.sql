-- chinwag schema: a room's key and member limit (issue 19, branch ircmodes).
-- room_key: what a join must give (IRC +k); NULL: none. Kept as it is: the room's
-- members may read it back, as on IRC. member_limit: how many may be online in
-- the room before joins are refused (IRC +l); NULL: none.
ALTER TABLE rooms ADD COLUMN room_key TEXT CHECK (room_key <> '');
ALTER TABLE rooms ADD COLUMN member_limit INTEGER CHECK (member_limit > 0);
