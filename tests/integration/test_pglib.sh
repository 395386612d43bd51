#!/bin/bash
# tests/lib/pg.sh, the private PostgreSQL cluster the shared-store tests
# use: pg_up gives a running cluster on a Unix socket in the test's own
# directory and no TCP port, role mmtrust that needs its password (none,
# or a wrong one, is refused), database mmtrust owned by it; pg_stop and
# pg_start stop it and start the same cluster again (same port, data
# kept); pg_down removes everything and may be called twice.
set -u
BUILD=$(realpath "${1:-build}")
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/pg.sh"

mm_setup pglib
mm_cleanup_hook() { pg_down; }
PSQL=$PG_BIN/psql
# gone PID: no such process, or only a zombie not reaped yet (pg_ctl's
# postmaster is not our child)
gone() { ! kill -0 "$1" 2>/dev/null || [ "$(ps -o stat= -p "$1" | cut -c1)" = Z ]; }

pg_up "$MM_TMP/pg" || { fail "pg_up"; summary test_pglib; exit 1; }
# as_mmtrust PASSWORD SQL: psql as role mmtrust through PG_URI
as_mmtrust() {
	PGPASSWORD=$1 PGCONNECT_TIMEOUT=5 "$PSQL" -X -q -At -v ON_ERROR_STOP=1 -d "$PG_URI" -c "$2"
}
pw=$(head -1 "$PG_PASSWORD_FILE")

check "PG_URI names the socket directory and port, role and database mmtrust" \
	test "$PG_URI" = "postgresql:///mmtrust?host=$MM_TMP/pg/sock&port=$PG_PORT&user=mmtrust"
check "no password in PG_URI" sh -c "! printf '%s' '$PG_URI' | grep -qF -- '$pw'"
check "the password file is root's, mode 0600" test "$(stat -c '%U %a' "$PG_PASSWORD_FILE")" = "root 600"
check "a long random password" test "${#pw}" -ge 24
check "the cluster's socket is in its directory" test -S "$PG_SOCK/.s.PGSQL.$PG_PORT"
check "not the system cluster's port" test "$PG_PORT" -ne 5432
pm=$(head -1 "$PG_DIR/data/postmaster.pid")
check "the postmaster runs as postgres" test "$(stat -c %U "/proc/$pm")" = postgres
check "no TCP socket: listen_addresses is empty" test "$(pg_psql 'SHOW listen_addresses')" = ""
check "no TCP listener of the postmaster" sh -c "! ss -Htlnp | grep -q 'pid=$pm,'"

expect_exit 0 "mmtrust connects with its password" as_mmtrust "$pw" "SELECT current_user, current_database()"
check "as mmtrust, on database mmtrust" test "$OUT" = "mmtrust|mmtrust"
expect_exit 2 "a wrong password is refused" as_mmtrust "${pw}x" "SELECT 1"
contains "$ERR" 'password authentication failed for user "mmtrust"' "the refusal says why"
expect_exit 2 "no password is refused" env -u PGPASSWORD PGPASSFILE=/dev/null \
	"$PSQL" -X -w -At -d "$PG_URI" -c "SELECT 1"
expect_exit 2 "the superuser needs its password too" env PGPASSFILE=/dev/null \
	"$PSQL" -X -w -At -h "$PG_SOCK" -p "$PG_PORT" -U postgres -d mmtrust -c "SELECT 1"
check "mmtrust owns database mmtrust" \
	test "$(pg_psql "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'mmtrust'")" = mmtrust
check "mmtrust is not a superuser" \
	test "$(pg_psql "SELECT rolsuper FROM pg_roles WHERE rolname = 'mmtrust'")" = f
check "mmtrust creates a table in its database" \
	as_mmtrust "$pw" "CREATE TABLE t (v text); INSERT INTO t VALUES ('kept')"

# --- stop and start: same cluster, same port, data kept
port=$PG_PORT
check "pg_stop" pg_stop
expect_exit 2 "stopped: no connection" as_mmtrust "$pw" "SELECT 1"
check "stopped: the postmaster is gone" gone "$pm"
check "pg_start" pg_start
check "the same port again" test "$PG_PORT" = "$port" -a -S "$PG_SOCK/.s.PGSQL.$port"
expect_exit 0 "started again: the data is kept" as_mmtrust "$pw" "SELECT v FROM t"
check "the row" test "$OUT" = kept
expect_exit 1 "pg_psql fails on an SQL error" pg_psql "SELECT * FROM no_such_table"

# --- down: the postmaster and the directory go; twice is fine
pm=$(head -1 "$PG_DIR/data/postmaster.pid")
dir=$PG_DIR
check "pg_down" pg_down
check "down: the postmaster is gone" gone "$pm"
check "down: the directory is gone" test ! -e "$dir"
check "down: PG_URI is unset" test -z "${PG_URI:-}"
check "pg_down a second time" pg_down

# --- a missing PostgreSQL fails loudly
expect_exit 1 "pg_up without the binaries fails" env PG_BIN=/nonexistent bash -c \
	". '$(dirname "$0")/../lib/pg.sh'; PG_BIN=/nonexistent; pg_up '$MM_TMP/pg2'"
contains "$ERR" "PostgreSQL 15 is needed" "and says so"
check "and created nothing" test ! -e "$MM_TMP/pg2"

summary test_pglib
