# Starts a throwaway PostgreSQL 15 on 127.0.0.1:$PGPORT for the tests, as a child of the
# calling shell. Source it; it exports STEWARD_TEST_POSTGRES_URL and defines pg_stop.
# Installs the server from Debian packages when it is missing.
PGPORT=${PGPORT:-55432}
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  apt-get install -y -q --no-install-recommends postgresql postgresql-contrib >/dev/null
fi
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
PGD=$(mktemp -d)
chown postgres: "$PGD"
echo superpw >"$PGD/pw"
runuser -u postgres -- "$PGBIN/initdb" -D "$PGD/data" -U postgres --pwfile="$PGD/pw" \
  --auth=scram-sha-256 -E UTF8 --locale=C.UTF-8 --no-sync >/dev/null
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGD/data" -l "$PGD/log" -w -t 30 start \
  -o "-c listen_addresses=127.0.0.1 -p $PGPORT -k $PGD -c fsync=off -c full_page_writes=off -c max_connections=300" >/dev/null
PGPASSWORD=superpw psql -h 127.0.0.1 -p "$PGPORT" -U postgres -v ON_ERROR_STOP=1 -q \
  -c "CREATE ROLE steward LOGIN CREATEDB PASSWORD 'steward'" -c "CREATE DATABASE steward OWNER steward"
export STEWARD_TEST_POSTGRES_URL="postgres://steward:steward@127.0.0.1:$PGPORT/steward"
pg_stop() {
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGD/data" stop -m fast >/dev/null || true
  rm -rf "$PGD"
}
