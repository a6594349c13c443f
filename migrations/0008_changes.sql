-- Edits, deletions and reactions: each is a change numbered per room by `eseq` (apart from
-- the messages' `seq`), stored with what it did (`data`, the change as its frame carries it,
-- JSON) and folded into its message in the same transaction, so a message row always holds
-- the message's current state.

ALTER TABLE messages ADD COLUMN edited INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
-- Who reacted with what (JSON, `protocol::Reaction`s); empty for none.
ALTER TABLE messages ADD COLUMN reactions TEXT NOT NULL DEFAULT '';

-- Highest change number ever assigned in the room.
ALTER TABLE rooms ADD COLUMN last_eseq INTEGER NOT NULL DEFAULT 0;

CREATE TABLE IF NOT EXISTS changes (
    room TEXT NOT NULL,
    eseq INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (room, eseq)
) WITHOUT ROWID;

-- A deletion empties the texts of the message's edits.
CREATE INDEX IF NOT EXISTS changes_by_message ON changes (room, seq);
