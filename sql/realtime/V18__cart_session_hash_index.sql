-- The abandoned-cart sweep looks cart events up by session with equality only
-- (crates/globalmart-stream/src/housekeeping.rs, SWEEP), never by range or in order, so a hash
-- index serves it as the B-tree did. Inserting into it costs about half as much: the session ids
-- are random UUID text, and each B-tree insert compared them down the tree (one day of
-- `--profile course` cart events, 286,569 rows: 0.78 s against 1.73 s for the B-tree, a fifth of
-- what saving a cart event's row and its five indexes cost; docs/ARCHITECTURE.md, "A thirtieth
-- run"). The stream saves every cart event through it.
DROP INDEX IF EXISTS idx_cart_events_session;
CREATE INDEX IF NOT EXISTS idx_cart_events_session_hash ON cart_events USING hash (session_id);
