-- globalmart_realtime: raw events, catalogue, realtime metrics, alerts, dead letters, offsets.
-- SPEC section 4. Applied by the binaries (refinery) and runnable by hand:
--   psql -h localhost -p 5433 -U globalmart_user -d globalmart_realtime -v ON_ERROR_STOP=1 -f sql/realtime/V1__initial_schema.sql
-- Every statement is idempotent (IF NOT EXISTS, ON CONFLICT), so applying it twice changes nothing.
-- Table and column names follow the replaced platform so its dashboard SQL keeps working.

-- ---------------------------------------------------------------------------------------------
-- Raw events. ingest_seq is the batch ETL's watermark; created_at is when the row was saved.
-- ---------------------------------------------------------------------------------------------

-- One row per line item. line_item_id is derived from (transaction_id, line_number), never
-- random, so a replayed message maps to the same row and ON CONFLICT DO NOTHING drops it.
CREATE TABLE IF NOT EXISTS transactions (
    line_item_id     uuid PRIMARY KEY,
    transaction_id   uuid NOT NULL,
    line_number      smallint NOT NULL CHECK (line_number >= 0),
    user_id          text NOT NULL,
    session_id       text,
    product_id       text NOT NULL,
    quantity         integer NOT NULL CHECK (quantity BETWEEN 1 AND 100),
    price            numeric(12, 2) NOT NULL CHECK (price >= 0),
    total_amount     numeric(14, 2) NOT NULL,  -- of the whole transaction, repeated on each line
    payment_method   text NOT NULL,
    country          text NOT NULL,
    "timestamp"      timestamptz NOT NULL,
    ingest_seq       bigint GENERATED ALWAYS AS IDENTITY,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (transaction_id, line_number)
);
CREATE INDEX IF NOT EXISTS idx_transactions_ingest_seq ON transactions (ingest_seq);
CREATE INDEX IF NOT EXISTS idx_transactions_timestamp ON transactions ("timestamp");
CREATE INDEX IF NOT EXISTS idx_transactions_user ON transactions (user_id);

-- view / search / filter / compare. Fields of one event type only live in attributes.
CREATE TABLE IF NOT EXISTS product_view_events (
    event_id         uuid PRIMARY KEY,
    event_type       text NOT NULL CHECK (event_type IN ('view', 'search', 'filter', 'compare')),
    "timestamp"      timestamptz NOT NULL,
    user_id          text NOT NULL,
    session_id       text NOT NULL,
    country          text NOT NULL,
    product_id       text,                     -- view only
    product_name     text,
    category         text,                     -- view: the product's; filter: filter_category; compare: category
    price            numeric(12, 2),
    view_duration    integer,                  -- seconds, view only
    search_query     text,                     -- view (when reached from a search) and search
    attributes       jsonb NOT NULL DEFAULT '{}'::jsonb,  -- results_count, min/max_price, product_ids
    ingest_seq       bigint GENERATED ALWAYS AS IDENTITY,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_product_view_events_ingest_seq ON product_view_events (ingest_seq);
CREATE INDEX IF NOT EXISTS idx_product_view_events_timestamp ON product_view_events ("timestamp");
CREATE INDEX IF NOT EXISTS idx_product_view_events_product ON product_view_events (product_id);

-- add_to_cart / remove_from_cart / update_quantity / checkout. Checkout rows keep total_items
-- in quantity and total_value in cart_value (as the replaced platform did); its items and
-- update_quantity's old/new quantities live in attributes.
CREATE TABLE IF NOT EXISTS cart_events (
    event_id         uuid PRIMARY KEY,
    event_type       text NOT NULL
                     CHECK (event_type IN ('add_to_cart', 'remove_from_cart', 'update_quantity', 'checkout')),
    "timestamp"      timestamptz NOT NULL,
    user_id          text NOT NULL,
    session_id       text NOT NULL,
    country          text NOT NULL,
    product_id       text,                     -- NULL for checkout
    product_name     text,
    category         text,
    price            numeric(12, 2),
    quantity         integer,
    cart_size        integer,
    cart_value       numeric(14, 2),
    attributes       jsonb NOT NULL DEFAULT '{}'::jsonb,
    ingest_seq       bigint GENERATED ALWAYS AS IDENTITY,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_cart_events_ingest_seq ON cart_events (ingest_seq);
CREATE INDEX IF NOT EXISTS idx_cart_events_timestamp ON cart_events ("timestamp");
CREATE INDEX IF NOT EXISTS idx_cart_events_session ON cart_events (session_id);

-- ---------------------------------------------------------------------------------------------
-- Catalogue. products and users hold the latest version (upserted when updated_at is newer);
-- product_history and user_history keep every version received, append-only, so the warehouse
-- can build real SCD2 history incrementally (an UPDATE does not move ingest_seq).
-- ---------------------------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS products (
    product_id       text PRIMARY KEY,
    name             text NOT NULL,
    category         text NOT NULL,
    price            numeric(12, 2) NOT NULL,
    inventory        integer NOT NULL,
    rating           numeric(3, 1),
    updated_at       timestamptz NOT NULL,
    ingest_seq       bigint GENERATED ALWAYS AS IDENTITY,
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS product_history (
    product_id       text NOT NULL,
    updated_at       timestamptz NOT NULL,
    name             text NOT NULL,
    category         text NOT NULL,
    price            numeric(12, 2) NOT NULL,
    inventory        integer NOT NULL,
    rating           numeric(3, 1),
    ingest_seq       bigint GENERATED ALWAYS AS IDENTITY,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (product_id, updated_at)
);
CREATE INDEX IF NOT EXISTS idx_product_history_ingest_seq ON product_history (ingest_seq);

CREATE TABLE IF NOT EXISTS users (
    user_id           text PRIMARY KEY,
    email             text NOT NULL,
    age               integer NOT NULL,
    country           text NOT NULL,
    registration_date timestamptz NOT NULL,
    preferences       text[] NOT NULL DEFAULT '{}',
    updated_at        timestamptz NOT NULL,
    ingest_seq        bigint GENERATED ALWAYS AS IDENTITY,
    created_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS user_history (
    user_id           text NOT NULL,
    updated_at        timestamptz NOT NULL,
    email             text NOT NULL,
    age               integer NOT NULL,
    country           text NOT NULL,
    registration_date timestamptz NOT NULL,
    preferences       text[] NOT NULL DEFAULT '{}',
    ingest_seq        bigint GENERATED ALWAYS AS IDENTITY,
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, updated_at)
);
CREATE INDEX IF NOT EXISTS idx_user_history_ingest_seq ON user_history (ingest_seq);

-- Stock on hand: starts from the catalogue's inventory, decremented by sales, reset by restocks.
CREATE TABLE IF NOT EXISTS product_stock (
    product_id        text PRIMARY KEY,
    stock             integer NOT NULL,
    catalogue_inventory integer NOT NULL,       -- the inventory of the last catalogue record applied
    units_sold        bigint NOT NULL DEFAULT 0, -- since the last restock
    restocked_at      timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- ---------------------------------------------------------------------------------------------
-- Delivery bookkeeping.
-- ---------------------------------------------------------------------------------------------

-- Every message that failed to parse or validate, with why. The (topic, partition, offset)
-- key makes a replay of the same bad message a no-op.
CREATE TABLE IF NOT EXISTS dead_letter_events (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic            text NOT NULL,
    "partition"      integer NOT NULL,
    "offset"         bigint NOT NULL,
    key              bytea,
    payload          bytea,
    reason           text NOT NULL,
    received_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (topic, "partition", "offset")
);
CREATE INDEX IF NOT EXISTS idx_dead_letter_events_received_at ON dead_letter_events (received_at);

-- The next offset to read per partition, written in the same transaction as the rows it
-- covers: the stream seeks here on assignment, which makes saving effectively-once.
CREATE TABLE IF NOT EXISTS stream_offsets (
    consumer_group   text NOT NULL,
    topic            text NOT NULL,
    "partition"      integer NOT NULL,
    next_offset      bigint NOT NULL CHECK (next_offset >= 0),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, "partition")
);

-- ---------------------------------------------------------------------------------------------
-- Realtime metrics: 1-minute event-time windows [window_start, window_end), maintained in the
-- same transaction as the raw rows they count. Dashboards filter on window_end.
-- ---------------------------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS sales_per_minute (
    window_start       timestamptz PRIMARY KEY,
    window_end         timestamptz NOT NULL,
    transaction_count  bigint NOT NULL DEFAULT 0,
    total_revenue      numeric(16, 2) NOT NULL DEFAULT 0,
    total_items        bigint NOT NULL DEFAULT 0,
    avg_order_value    numeric(14, 2) NOT NULL DEFAULT 0,
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_sales_per_minute_window_end ON sales_per_minute (window_end);

CREATE TABLE IF NOT EXISTS sales_by_country (
    window_start       timestamptz NOT NULL,
    window_end         timestamptz NOT NULL,
    country            text NOT NULL,
    transaction_count  bigint NOT NULL DEFAULT 0,
    total_revenue      numeric(16, 2) NOT NULL DEFAULT 0,
    avg_order_value    numeric(14, 2) NOT NULL DEFAULT 0,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (window_start, country)
);
CREATE INDEX IF NOT EXISTS idx_sales_by_country_window_end ON sales_by_country (window_end);

CREATE TABLE IF NOT EXISTS cart_metrics (
    window_start         timestamptz NOT NULL,
    window_end           timestamptz NOT NULL,
    country              text NOT NULL,
    add_to_cart_count    bigint NOT NULL DEFAULT 0,
    remove_from_cart_count bigint NOT NULL DEFAULT 0,
    update_quantity_count bigint NOT NULL DEFAULT 0,
    checkout_count       bigint NOT NULL DEFAULT 0,
    active_sessions      bigint NOT NULL DEFAULT 0,  -- sessions with cart activity in the window
    checkout_sessions    bigint NOT NULL DEFAULT 0,
    abandoned_sessions   bigint NOT NULL DEFAULT 0,  -- counted in the window of their last activity
    abandonment_rate_pct numeric(5, 2) NOT NULL DEFAULT 0 CHECK (abandonment_rate_pct BETWEEN 0 AND 100),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (window_start, country)
);
CREATE INDEX IF NOT EXISTS idx_cart_metrics_window_end ON cart_metrics (window_end);

-- A session with items and no checkout for the inactivity timeout: recorded once per session.
CREATE TABLE IF NOT EXISTS abandoned_carts (
    session_id         text PRIMARY KEY,
    user_id            text NOT NULL,
    country            text NOT NULL,
    cart_size          integer NOT NULL,
    cart_value         numeric(14, 2) NOT NULL,
    items              jsonb NOT NULL DEFAULT '[]'::jsonb,
    last_activity_at   timestamptz NOT NULL,
    detected_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_abandoned_carts_last_activity ON abandoned_carts (last_activity_at);

CREATE TABLE IF NOT EXISTS trending_products (
    window_start       timestamptz NOT NULL,
    window_end         timestamptz NOT NULL,
    product_id         text NOT NULL,
    product_name       text,
    category           text,
    view_count         bigint NOT NULL DEFAULT 0,
    cart_add_count     bigint NOT NULL DEFAULT 0,
    purchase_count     bigint NOT NULL DEFAULT 0,
    units_sold         bigint NOT NULL DEFAULT 0,
    revenue            numeric(16, 2) NOT NULL DEFAULT 0,
    trend_score        numeric(14, 2) NOT NULL DEFAULT 0,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (window_start, product_id)
);
CREATE INDEX IF NOT EXISTS idx_trending_products_window_end ON trending_products (window_end);

CREATE TABLE IF NOT EXISTS category_performance (
    window_start       timestamptz NOT NULL,
    window_end         timestamptz NOT NULL,
    category           text NOT NULL,
    view_count         bigint NOT NULL DEFAULT 0,
    cart_add_count     bigint NOT NULL DEFAULT 0,
    purchase_count     bigint NOT NULL DEFAULT 0,
    units_sold         bigint NOT NULL DEFAULT 0,
    revenue            numeric(16, 2) NOT NULL DEFAULT 0,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (window_start, category)
);
CREATE INDEX IF NOT EXISTS idx_category_performance_window_end ON category_performance (window_end);

-- ---------------------------------------------------------------------------------------------
-- Anomalies and alerts. Each is keyed by its cause, so it is recorded once however often the
-- events behind it are replayed.
-- ---------------------------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS high_value_anomalies (
    transaction_id        uuid PRIMARY KEY,
    user_id               text NOT NULL,
    total_amount          numeric(14, 2) NOT NULL,
    severity              text NOT NULL CHECK (severity IN ('critical', 'high', 'medium')),
    country               text NOT NULL,
    payment_method        text NOT NULL,
    transaction_timestamp timestamptz NOT NULL,
    detected_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_high_value_anomalies_ts ON high_value_anomalies (transaction_timestamp);

CREATE TABLE IF NOT EXISTS high_quantity_anomalies (
    line_item_id          uuid PRIMARY KEY,
    transaction_id        uuid NOT NULL,
    user_id               text NOT NULL,
    product_id            text NOT NULL,
    quantity              integer NOT NULL,
    severity              text NOT NULL CHECK (severity IN ('critical', 'high', 'medium')),
    transaction_timestamp timestamptz NOT NULL,
    detected_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_high_quantity_anomalies_ts ON high_quantity_anomalies (transaction_timestamp);

-- Two or more orders >= 1000 by one user within a minute.
CREATE TABLE IF NOT EXISTS suspicious_patterns (
    user_id               text NOT NULL,
    pattern_type          text NOT NULL,
    window_start          timestamptz NOT NULL,
    window_end            timestamptz NOT NULL,
    order_count           integer NOT NULL,
    total_amount          numeric(16, 2) NOT NULL,
    transaction_ids       uuid[] NOT NULL,
    detected_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, pattern_type, window_start)
);
CREATE INDEX IF NOT EXISTS idx_suspicious_patterns_window_end ON suspicious_patterns (window_end);

-- A product selling fast: units in a sliding 10-minute window above the threshold.
CREATE TABLE IF NOT EXISTS high_demand_alerts (
    product_id            text NOT NULL,
    window_start          timestamptz NOT NULL,
    window_end            timestamptz NOT NULL,
    units_sold            bigint NOT NULL,
    order_count           bigint NOT NULL,
    detected_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (product_id, window_start)
);
CREATE INDEX IF NOT EXISTS idx_high_demand_alerts_window_end ON high_demand_alerts (window_end);

-- Stock alerts from real stock levels: 'low_stock' when stock crosses below the threshold,
-- 'restock_needed' when sales velocity would empty it soon. One row per crossing.
CREATE TABLE IF NOT EXISTS restock_alerts (
    product_id            text NOT NULL,
    alert_type            text NOT NULL CHECK (alert_type IN ('low_stock', 'restock_needed', 'out_of_stock')),
    triggered_at          timestamptz NOT NULL,
    current_stock         integer NOT NULL,
    threshold             integer NOT NULL,
    units_per_hour        numeric(12, 2),
    hours_until_stockout  numeric(12, 2),
    resolved_at           timestamptz,
    PRIMARY KEY (product_id, alert_type, triggered_at)
);
CREATE INDEX IF NOT EXISTS idx_restock_alerts_triggered_at ON restock_alerts (triggered_at);

-- Every critical alert, once per cause (alert_key), also produced to alerts-topic; published_at
-- is set once the broker acknowledged it, so an unpublished alert is retried after a crash.
CREATE TABLE IF NOT EXISTS alerts (
    alert_id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_key             text NOT NULL UNIQUE,
    alert_type            text NOT NULL,
    severity              text NOT NULL CHECK (severity IN ('critical', 'high', 'medium', 'low')),
    entity_id             text NOT NULL,
    message               text NOT NULL,
    details               jsonb NOT NULL DEFAULT '{}'::jsonb,
    event_timestamp       timestamptz NOT NULL,
    created_at            timestamptz NOT NULL DEFAULT now(),
    published_at          timestamptz
);
CREATE INDEX IF NOT EXISTS idx_alerts_created_at ON alerts (created_at);
CREATE INDEX IF NOT EXISTS idx_alerts_unpublished ON alerts (alert_id) WHERE published_at IS NULL;

-- ---------------------------------------------------------------------------------------------
-- Read-only access for Grafana. The role is cluster-wide; a deployment where the DBA creates it
-- beforehand only gets the grants.
-- ---------------------------------------------------------------------------------------------
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'globalmart_reader') THEN
        CREATE ROLE globalmart_reader LOGIN PASSWORD 'reader_password';
    END IF;
EXCEPTION
    -- Another database of the same cluster created it at the same moment.
    WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;
GRANT USAGE ON SCHEMA public TO globalmart_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO globalmart_reader;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO globalmart_reader;
