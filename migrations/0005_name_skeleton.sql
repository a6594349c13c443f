-- What a registered name looks like: the UTS #39 skeleton of its NFKC, case-folded form
-- (`server::accounts::name_skeleton`). No two accounts may look alike, and no guest may
-- look like an account. Rows made before this column existed get theirs at start-up.
ALTER TABLE users ADD COLUMN name_skeleton TEXT;
CREATE UNIQUE INDEX IF NOT EXISTS users_name_skeleton ON users (name_skeleton);
