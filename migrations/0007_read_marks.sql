-- How far each reader has read in each room: `reader` is an author key (`a:<account id>`,
-- the same on every device, or `g:<guest session id>`), `seq` the highest sequence number
-- read. Written coalesced by the server (`server::reads`), never lowered.
CREATE TABLE IF NOT EXISTS read_marks (
    reader TEXT NOT NULL,
    room TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (reader, room)
) WITHOUT ROWID;
