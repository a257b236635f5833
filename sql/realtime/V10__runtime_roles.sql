-- Least privilege (docs/USER_GUIDE.md, "Production"): the owner role, which runs these
-- migrations, owns every table; the binaries can run as login roles that are members of the
-- group roles below, each allowed only what its binary needs. Group roles, so that no password
-- lives in a migration: a deployment creates its own login roles, for instance
--   CREATE ROLE stream_prod LOGIN PASSWORD '…' IN ROLE globalmart_stream_role;
-- (scripts/dev-up.sh creates globalmart_stream and globalmart_batch that way). A cluster shares
-- roles between its databases, so either database may have created them first.
DO $$
BEGIN
    CREATE ROLE globalmart_stream_role NOLOGIN;
EXCEPTION
    WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;
DO $$
BEGIN
    CREATE ROLE globalmart_batch_role NOLOGIN;
EXCEPTION
    WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;

-- Only the owner creates objects here (PostgreSQL 15's default, made explicit for older ones).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO globalmart_stream_role, globalmart_batch_role;

-- The stream reads and writes its realtime tables (housekeeping deletes old windows) and reads
-- the schema history, to check the schema is the one it was built for.
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO globalmart_stream_role;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO globalmart_stream_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO globalmart_stream_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO globalmart_stream_role;

-- The batch only reads the realtime database.
GRANT SELECT ON ALL TABLES IN SCHEMA public TO globalmart_batch_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO globalmart_batch_role;
