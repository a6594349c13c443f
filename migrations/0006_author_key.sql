-- Messages remember who wrote them, not only the name shown: `author_key` is `a:<account id>`
-- or `g:<guest session id>`. De-duplication goes by it, so two guests who share a name (and
-- happen to share a client id) are two authors, and a guest's message stays a guest's when
-- someone later registers the name.

ALTER TABLE messages ADD COLUMN author_key TEXT NOT NULL DEFAULT '';

-- Rows from before: an author whose name is an account's name is taken to be that account;
-- any other was a guest, whose session is no longer known (`g:name:<name>`, which no live
-- guest's key can equal: session ids are numbers).
CREATE INDEX users_by_name ON users (name);
UPDATE messages SET author_key = COALESCE(
    (SELECT 'a:' || u.id FROM users u WHERE u.name = messages.author),
    'g:name:' || messages.author
);
DROP INDEX users_by_name;

DROP INDEX IF EXISTS messages_dedup;
CREATE UNIQUE INDEX IF NOT EXISTS messages_dedup_author ON messages (room, author_key, client_id);
