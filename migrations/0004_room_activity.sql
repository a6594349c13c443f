-- The home page lists rooms most recently active first, a page at a time: each room keeps
-- when it last had a message (or was created), indexed in that order.
ALTER TABLE rooms ADD COLUMN last_active INTEGER NOT NULL DEFAULT 0;
UPDATE rooms SET last_active = created_at;
CREATE INDEX IF NOT EXISTS rooms_by_activity ON rooms (last_active DESC, name);
