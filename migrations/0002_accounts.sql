-- Accounts, sessions, and who may enter private rooms.

CREATE TABLE IF NOT EXISTS users (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL,
    -- Lower-cased name: "Ada" and "ada" are one account, and no guest can use either.
    name_key      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);

-- A session belongs to an account (user_id) or to a guest (guest_name), never both.
-- Only a hash of the cookie's token is stored, so a copy of the database opens no sessions.
CREATE TABLE IF NOT EXISTS sessions (
    id         INTEGER PRIMARY KEY,
    token_hash BLOB NOT NULL UNIQUE,
    user_id    INTEGER REFERENCES users (id) ON DELETE CASCADE,
    guest_name TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    CHECK ((user_id IS NULL) != (guest_name IS NULL))
);

-- Rooms that are not public: private rooms and direct messages. A room not listed here
-- is public.
CREATE TABLE IF NOT EXISTS room_access (
    room       TEXT PRIMARY KEY NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('private', 'direct')),
    owner      INTEGER NOT NULL REFERENCES users (id),
    created_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS room_members (
    room    TEXT NOT NULL REFERENCES room_access (room),
    user_id INTEGER NOT NULL REFERENCES users (id),
    PRIMARY KEY (room, user_id)
) WITHOUT ROWID;
