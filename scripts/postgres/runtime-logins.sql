-- The login roles the binaries run as with least privilege (docs/USER_GUIDE.md, "Production"):
-- members of the group roles the migrations create (sql/realtime/V10__runtime_roles.sql), run
-- by scripts/dev-up.sh and by docker-compose's databases (scripts/postgres/initdb.sh) after the
-- migrations. psql variables: stream_password, batch_password. Safe to run again: an existing
-- role gets the password given.
SELECT format('CREATE ROLE globalmart_stream LOGIN PASSWORD %L', :'stream_password')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'globalmart_stream') \gexec
SELECT format('CREATE ROLE globalmart_batch LOGIN PASSWORD %L', :'batch_password')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'globalmart_batch') \gexec
SELECT format('ALTER ROLE globalmart_stream LOGIN PASSWORD %L', :'stream_password') \gexec
SELECT format('ALTER ROLE globalmart_batch LOGIN PASSWORD %L', :'batch_password') \gexec
GRANT globalmart_stream_role TO globalmart_stream;
GRANT globalmart_batch_role TO globalmart_batch;
