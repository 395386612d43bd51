#!/bin/bash
# Run each libFuzzer target for SECONDS on a copy of its seed corpus
# (make fuzz; tests/fuzz/README.md).  Prints runs and coverage per target;
# exits non-zero when any target found something.
#   run.sh FUZZ_DIR SECONDS TARGET...
set -uo pipefail

dir=$1 seconds=$2
shift 2
src=$(cd "$(dirname "$0")" && pwd)
failed=()

printf '%-10s %8s %10s %7s %7s  %s\n' target seconds runs cov ft result
for t in "$@"; do
	bin=$dir/fuzz_$t work=$dir/work/$t art=$dir/artifacts/$t
	rm -rf "$work" && mkdir -p "$work/corpus" "$art"
	cp -r "$src/corpus/$t/." "$work/corpus/"
	dict=()
	[ -f "$src/$t.dict" ] && dict=(-dict="$src/$t.dict")
	"$bin" "${dict[@]}" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$art/" "$work/corpus" >"$work/log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)
	last=$(grep -E '^#[0-9]+' "$work/log" | tail -1)
	cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
	ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
	result=ok
	if [ $rc -ne 0 ]; then
		result="FINDING (exit $rc): $work/log, $art/"
		failed+=("$t")
		grep -E 'ERROR|invariant|SUMMARY|runtime error' "$work/log" | head -5 >&2
	fi
	printf '%-10s %8s %10s %7s %7s  %s\n' "$t" "$seconds" "${runs:-?}" "${cov:-?}" \
		"${ft:-?}" "$result"
done
if [ ${#failed[@]} -gt 0 ]; then
	echo "fuzz: findings in: ${failed[*]}" >&2
	exit 1
fi
echo "fuzz: no findings"
