-- Least privilege (docs/USER_GUIDE.md, "Production"; the roles are explained in
-- sql/realtime/V10__runtime_roles.sql): the batch reads and writes the warehouse; the stream
-- has nothing here; Grafana's globalmart_reader reads (V1).
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

REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO globalmart_batch_role;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO globalmart_batch_role;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO globalmart_batch_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO globalmart_batch_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO globalmart_batch_role;
