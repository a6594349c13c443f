-- Several nodes: each renews its lease here every few seconds (PostgreSQL's clock, so
-- nodes' clocks need not agree); a node whose lease ran out is down, and its people leave.
CREATE TABLE nodes (
    id      BIGINT PRIMARY KEY,
    seen_at BIGINT NOT NULL
);
