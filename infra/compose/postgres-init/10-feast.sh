#!/usr/bin/env bash
# First start of the postgres container only (docker-entrypoint-initdb.d): a role and a
# database for the Feast SQL registry (feast.registry in conf/cluster.yaml). The password
# comes from the container environment (FEAST_DB_PASSWORD), never from this file.
set -euo pipefail
: "${FEAST_DB_PASSWORD:?set FEAST_DB_PASSWORD}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  --set=feast_password="$FEAST_DB_PASSWORD" <<'SQL'
CREATE ROLE feast LOGIN PASSWORD :'feast_password';
CREATE DATABASE feast OWNER feast;
SQL
