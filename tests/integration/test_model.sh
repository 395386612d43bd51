#!/bin/bash
# The model test (tests/model/model.py) against the real daemon, in
# namespaces it creates and deletes: MODEL_STEPS (300) random table changes
# with a fixed seed (MODEL_SEED, default 20261201), then as many with a
# random seed, printed so that a failure can be repeated.  A failure is
# shrunk (MODEL_SHRINK_SECONDS, default 60) and printed as a replayable list.
set -u
BUILD=$(realpath "${1:-build}")
model=$(dirname "$0")/../model/model.py
PY=/usr/bin/python3   # Debian's: the model test uses the standard library only
[ -x "$PY" ] || PY=$(command -v python3)
# MODEL_STORE=postgresql: every daemon the model starts has a fresh
# database of a private PostgreSQL cluster (tests/lib/pg.sh) as its store:
# $BUILD's mmtrustd behind a wrapper that turns the model's store path into
# that database's URI.
if [ "${MODEL_STORE:-sqlite}" = postgresql ]; then
	. "$(dirname "$0")/../lib/pg.sh"
	pgtmp=$(mktemp -d /tmp/mmtrust-modelpg-XXXXXX)
	trap 'pg_down; rm -rf "$pgtmp"' EXIT
	pg_up "$pgtmp/pg" || exit 1
	mkdir "$pgtmp/build"
	ln -s "$BUILD"/* "$pgtmp/build/" && rm "$pgtmp/build/mmtrustd"
	cat >"$pgtmp/build/mmtrustd" <<WRAP
#!/bin/bash
. '$(realpath "$(dirname "$0")/../lib/pg.sh")'
PG_DIR='$PG_DIR' PG_SOCK='$PG_SOCK' PG_PORT='$PG_PORT'
conf= prev=
for a in "\$@"; do [ "\$prev" = --config ] && conf=\$a; prev=\$a; done
if [ -n "\$conf" ] && ! grep -q '^store = postgresql' "\$conf"; then
	db=model_\$(basename "\$(dirname "\$conf")" | tr A-Z a-z | tr -c 'a-z0-9\n' _)
	PG_DB=postgres pg_psql "CREATE DATABASE \$db OWNER mmtrust" >/dev/null || exit 1
	awk -v s="store = \$(pg_uri "\$db")" -v p="store_password_file = $PG_PASSWORD_FILE" \\
		'/^store = /{ print s; print p; next } { print }' "\$conf" >"\$conf.pg" &&
		mv "\$conf.pg" "\$conf" || exit 1
fi
exec '$BUILD/mmtrustd' "\$@"
WRAP
	chmod +x "$pgtmp/build/mmtrustd"
	BUILD=$pgtmp/build
fi
steps=${MODEL_STEPS:-300}
shrink=${MODEL_SHRINK_SECONDS:-60}
random_seed=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')
rc=0
for seed in "${MODEL_SEED:-20261201}" "$random_seed"; do
	"$PY" "$model" --seed "$seed" --steps "$steps" --shrink-seconds "$shrink" "$BUILD" || rc=1
done
[ $rc -eq 0 ] && echo "test_model: 2 seeds x $steps steps passed (store: ${MODEL_STORE:-sqlite})"
exit $rc
