-- Logging out sweeps expired sessions; without an index that sweep reads every session.
CREATE INDEX IF NOT EXISTS sessions_expiry ON sessions (expires_at);
