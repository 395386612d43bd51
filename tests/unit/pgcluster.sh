#!/bin/bash
# A private PostgreSQL cluster for the store's unit test (test_store_pg):
# in DIR (made by the test), its Unix socket in DIR, no TCP at all.  Never
# the system's cluster.
#
#   pgcluster.sh init DIR PORT PASSWORD  initdb, start, role and database mmtrust
#   pgcluster.sh start DIR               start again (after stop)
#   pgcluster.sh stop DIR                stop (fast: clients are cut off)
#   pgcluster.sh destroy DIR             stop if running, remove DIR
#
# The PostgreSQL server binaries are required: missing, this fails (no skip).
set -u

dir=${2:?usage: pgcluster.sh init|start|stop|destroy DIR ...}
bin=${PGBIN:-}
if [ -z "$bin" ]; then
	for b in /usr/lib/postgresql/*/bin; do [ -x "$b/initdb" ] && bin=$b; done
fi
if [ "$1" != destroy ] && { [ -z "$bin" ] || [ ! -x "$bin/initdb" ] || [ ! -x "$bin/pg_ctl" ]; }; then
	echo "pgcluster.sh: the PostgreSQL server (initdb, pg_ctl under /usr/lib/postgresql/*/bin or PGBIN) is not installed: apt-get install postgresql" >&2
	exit 1
fi

# initdb and the server refuse root: as user postgres.
as_pg() {
	if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case $1 in
init)
	port=${3:?port} password=${4:?password}
	[ "$(id -u)" = 0 ] && chown postgres: "$dir"
	chmod 0700 "$dir"
	as_pg "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C \
		>"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
	cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$dir'
port = $port
fsync = off
synchronous_commit = off
full_page_writes = off
CONF
	# The superuser over the socket without a password (setup only);
	# everyone else with one.
	cat >"$dir/data/pg_hba.conf" <<CONF
local all postgres trust
local all all scram-sha-256
CONF
	as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 start >/dev/null ||
		{ cat "$dir/server.log" >&2; exit 1; }
	as_pg "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres -d postgres \
		-c "CREATE ROLE mmtrust LOGIN PASSWORD '$password'" >/dev/null || exit 1
	;;
start)
	as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 start >/dev/null ||
		{ cat "$dir/server.log" >&2; exit 1; }
	;;
stop)
	as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null
	;;
destroy)
	if [ -n "$bin" ] && [ -d "$dir/data" ]; then
		as_pg "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1 &&
			as_pg "$bin/pg_ctl" -D "$dir/data" -m immediate -w -t 30 stop >/dev/null 2>&1
	fi
	case $dir in /tmp/mmtrust-test-pg-*) rm -rf "$dir" ;; *) echo "refusing to remove $dir" >&2; exit 1 ;; esac
	;;
*)
	echo "pgcluster.sh: unknown command $1" >&2
	exit 1
	;;
esac
