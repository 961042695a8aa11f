#!/usr/bin/env bash
# Runs unit test binaries (arguments) and then every tests/integration/*.sh, adds up their
# "N passed, N failed" lines and prints the total. Exit 77 from a test means "skipped":
# allowed outside CI with its reason printed, a failure when CI=true.
set -u
cd "$(dirname "$0")/.."
unit_only=0
if [ "${1:-}" = "--unit-only" ]; then unit_only=1; shift; fi

passed=0 failed=0 skipped=0
failed_names=()
run_one() {
        local name=$1; shift
        local out rc
        out=$(mktemp)
        "$@" >"$out" 2>&1
        rc=$?
        local line
        line=$(grep -E '^([A-Za-z]+: )?[0-9]+ passed, [0-9]+ failed' "$out" | tail -n 1)
        if [ $rc -eq 77 ]; then
                if [ "${CI:-}" = "true" ]; then
                        echo "FAIL (skip not allowed in CI) $name: $(tail -n 3 "$out" | tr '\n' ' ')"
                        failed=$((failed + 1)); failed_names+=("$name")
                else
                        echo "SKIP $name: $(tail -n 1 "$out")"
                        skipped=$((skipped + 1))
                fi
                rm -f "$out"; return
        fi
        local p=0 f=0
        if [ -n "$line" ]; then
                p=$(sed -E 's/^([A-Za-z]+: )?([0-9]+) passed, ([0-9]+) failed.*/\2/' <<<"$line")
                f=$(sed -E 's/^([A-Za-z]+: )?([0-9]+) passed, ([0-9]+) failed.*/\3/' <<<"$line")
        fi
        # A crash or a non-zero exit after printing a clean summary is still a failure.
        if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
        if [ -z "$line" ] && [ $rc -eq 0 ]; then f=1; echo "  (no summary line: counted as failed)"; fi
        passed=$((passed + p)); failed=$((failed + f))
        if [ "$f" -gt 0 ]; then
                echo "FAIL $name ($p passed, $f failed, exit $rc)"
                sed 's/^/    /' "$out" | tail -n 60
                failed_names+=("$name")
        else
                echo "ok   $name ($p checks)"
        fi
        rm -f "$out"
}

for t in "$@"; do run_one "$(basename "$t")" "$t"; done
if [ $unit_only -eq 0 ]; then
        for t in tests/integration/test_*.sh; do
                [ -e "$t" ] || continue
                run_one "$(basename "$t")" bash "$t"
        done
fi

echo
[ ${#failed_names[@]} -gt 0 ] && echo "failed: ${failed_names[*]}"
if [ $skipped -gt 0 ]; then
        echo "$passed passed, $failed failed, $skipped skipped"
else
        echo "$passed passed, $failed failed"
fi
[ $failed -eq 0 ]
