# A private PostgreSQL 15 cluster for tests of the shared store (sourced,
# after common.sh).  Never the system cluster: the cluster lives in a
# directory of the test's own, listens on a Unix socket in that directory
# only (listen_addresses = ''), and goes away with it.
#
#   pg_up DIR      initdb (as user postgres, scram-sha-256 for every local
#                  connection, superuser "postgres" with a random password),
#                  start, create role mmtrust (LOGIN, a random password) and
#                  database mmtrust owned by it.  Exports PG_DIR, PG_PORT,
#                  PG_SOCK (the socket directory), PG_URI (no password in
#                  it), PG_PASSWORD_FILE (DIR/password: mmtrust's password,
#                  root's, mode 0600).  DIR's parent must be searchable by
#                  user postgres (made so when it is not: chmod o+x).
#   pg_stop        stop the cluster (fast: clients are disconnected)
#   pg_start       start it again (same directory, same port)
#   pg_psql SQL... run each SQL as the superuser on database mmtrust
#                  (PG_DB overrides); -At output; fails on the first error
#   pg_uri DB      the URI of database DB for role mmtrust
#   pg_down        stop and remove everything; idempotent (for EXIT traps)
#
# Returns non-zero with a "pg:" message on stderr when something fails,
# e.g. Debian's postgresql-15 is not installed (scripts/deps.sh).

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PG_DIR=
PG_PORT=
PG_SOCK=

pg_die() {
	echo "pg: $*" >&2
	return 1
}

pg_as() { runuser -u postgres -- "$@"; }

# pg_free_port: a TCP port nothing listens on (the port also names the
# socket file; no TCP is opened), never 5432.
pg_free_port() {
	local p i
	for i in $(seq 50); do
		p=$((20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 40000))
		[ "$p" -eq 5432 ] && continue
		[ -z "$(ss -Htln "sport = :$p" 2>/dev/null)" ] && { echo "$p"; return 0; }
	done
	pg_die "no free port found"
}

pg_random() { od -An -N18 -tx1 /dev/urandom | tr -d ' \n'; }

pg_up() {
	local dir=$1 b pw superpw
	for b in initdb pg_ctl postgres psql; do
		[ -x "$PG_BIN/$b" ] || pg_die "$PG_BIN/$b missing: PostgreSQL 15 is needed" \
			"(Debian 12's postgresql-15: bash scripts/deps.sh)" || return 1
	done
	id postgres >/dev/null 2>&1 || pg_die "no user postgres (Debian's postgresql-15 makes it)" || return 1
	[ -n "$PG_DIR" ] && { pg_die "a cluster is up already in $PG_DIR"; return 1; }
	mkdir -p "$dir" || return 1
	dir=$(realpath "$dir")
	pg_as test -x "$(dirname "$dir")" || chmod o+x "$(dirname "$dir")" || return 1
	pg_as test -x "$(dirname "$dir")" ||
		pg_die "user postgres cannot reach $dir (a parent directory is closed)" || return 1
	PG_DIR=$dir
	PG_SOCK=$dir/sock
	PG_PORT=$(pg_free_port) || return 1
	mkdir -p "$PG_SOCK"
	chown postgres: "$dir" "$PG_SOCK"
	chmod 0700 "$dir"
	# The superuser's password: readable by postgres (initdb) and root.
	superpw=$(pg_random)
	(umask 077 && printf '%s\n' "$superpw" >"$dir/superuser.password")
	chown postgres: "$dir/superuser.password"
	pg_as "$PG_BIN/initdb" -D "$dir/data" -U postgres --pwfile="$dir/superuser.password" \
		--auth-local=scram-sha-256 --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 \
		--no-instructions >"$dir/initdb.log" 2>&1 ||
		{ cat "$dir/initdb.log" >&2; pg_die "initdb failed in $dir/data"; return 1; }
	cat >>"$dir/data/postgresql.conf" <<CONF
# a private test cluster: Unix socket only, in its own directory
listen_addresses = ''
port = $PG_PORT
unix_socket_directories = '$PG_SOCK'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 60
shared_buffers = 16MB
log_min_messages = warning
CONF
	pg_start || return 1
	pw=$(pg_random)
	PG_DB=postgres pg_psql "CREATE ROLE mmtrust LOGIN PASSWORD '$pw'" \
		"CREATE DATABASE mmtrust OWNER mmtrust" >/dev/null || { pg_die "creating role and database failed"; return 1; }
	(umask 077 && printf '%s\n' "$pw" >"$dir/password")
	chown root: "$dir/password"
	chmod 0600 "$dir/password"
	export PG_DIR PG_PORT PG_SOCK
	export PG_PASSWORD_FILE=$dir/password
	export PG_URI
	PG_URI=$(pg_uri mmtrust)
}

pg_uri() { echo "postgresql:///$1?host=$PG_SOCK&port=$PG_PORT&user=mmtrust"; }

pg_start() {
	[ -n "$PG_DIR" ] || { pg_die "pg_start: no cluster (pg_up first)"; return 1; }
	pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 30 start >/dev/null ||
		{ tail -5 "$PG_DIR/server.log" >&2; pg_die "the cluster in $PG_DIR did not start"; return 1; }
}

pg_stop() {
	[ -n "$PG_DIR" ] || { pg_die "pg_stop: no cluster (pg_up first)"; return 1; }
	pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w -t 30 stop >/dev/null ||
		{ pg_die "the cluster in $PG_DIR did not stop"; return 1; }
}

pg_psql() {
	local sql args=()
	for sql in "$@"; do args+=(-c "$sql"); done
	PGPASSWORD=$(cat "$PG_DIR/superuser.password") PGCONNECT_TIMEOUT=5 \
		"$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$PG_SOCK" -p "$PG_PORT" -U postgres \
		-d "${PG_DB:-mmtrust}" "${args[@]}"
}

pg_down() {
	[ -n "$PG_DIR" ] || return 0
	local pid
	if [ -f "$PG_DIR/data/postmaster.pid" ]; then
		pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w -t 20 stop >/dev/null 2>&1
		# still there: the postmaster this cluster started, by its PID
		pid=$(head -1 "$PG_DIR/data/postmaster.pid" 2>/dev/null)
		if [ -n "$pid" ] && [ -f "$PG_DIR/data/postmaster.pid" ] &&
			grep -qF "$PG_DIR/data" "/proc/$pid/cmdline" 2>/dev/null; then
			kill -KILL "$pid" 2>/dev/null
			sleep 0.2
		fi
	fi
	rm -rf "$PG_DIR"
	PG_DIR= PG_PORT= PG_SOCK=
	unset PG_URI PG_PASSWORD_FILE
	return 0
}
