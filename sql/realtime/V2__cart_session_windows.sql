-- Sessions with cart activity per 1-minute window and country, so cart_metrics counts a session
-- once per window however many batches (or stream instances) its events arrive in. Pruned with
-- the metric windows.
CREATE TABLE IF NOT EXISTS cart_session_windows (
    window_start     timestamptz NOT NULL,
    country          text NOT NULL,
    session_id       text NOT NULL,
    checked_out      boolean NOT NULL DEFAULT false,
    PRIMARY KEY (window_start, country, session_id)
);
GRANT SELECT ON cart_session_windows TO globalmart_reader;
