#!/bin/sh
# One database per food-delivery service, owned by the application role ($POSTGRES_USER).
# Run by the postgres image's entrypoint from /docker-entrypoint-initdb.d on first start only.
set -eu
for db in order_service consumer_service kitchen_service accounting_service notification_service; do
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -c "CREATE DATABASE $db OWNER \"$POSTGRES_USER\""
done
