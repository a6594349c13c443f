-- History: rooms, their messages with per-room sequence numbers, and the store's epoch.

CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS rooms (
    name       TEXT PRIMARY KEY NOT NULL,
    created_at INTEGER NOT NULL,
    -- Highest sequence number ever assigned; kept here so retention can delete old
    -- messages without sequence numbers ever going backwards.
    last_seq   INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS messages (
    room      TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    author    TEXT NOT NULL,
    client_id TEXT NOT NULL,
    text      TEXT NOT NULL,
    ts        INTEGER NOT NULL,
    PRIMARY KEY (room, seq)
) WITHOUT ROWID;

-- A resend of the same message is stored once.
CREATE UNIQUE INDEX IF NOT EXISTS messages_dedup ON messages (room, author, client_id);
