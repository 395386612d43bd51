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
steps=${MODEL_STEPS:-300}
shrink=${MODEL_SHRINK_SECONDS:-60}
random_seed=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')
rc=0
for seed in "${MODEL_SEED:-20261201}" "$random_seed"; do
	"$PY" "$model" --seed "$seed" --steps "$steps" --shrink-seconds "$shrink" "$BUILD" || rc=1
done
[ $rc -eq 0 ] && echo "test_model: 2 seeds x $steps steps passed"
exit $rc
