#!/usr/bin/env bash
# Runs each unit test binary (arguments) under valgrind memcheck with a full leak check and
# prints one line per test and a "N passed, N failed" total. A test fails when valgrind
# reports an error or a definite/possible leak (exit 99) or when the test itself fails.
# Suppressions for third-party libraries only: tests/fuzz/valgrind.supp.
set -u
cd "$(dirname "$0")/../.."
command -v valgrind >/dev/null || { echo "valgrind not installed (apt-get install valgrind)"; exit 77; }
logdir=${VALGRIND_LOGS:-build/valgrind}
mkdir -p "$logdir"
supp=()
[ -f tests/fuzz/valgrind.supp ] && supp=(--suppressions=tests/fuzz/valgrind.supp)
passed=0 failed=0
for t in "$@"; do
        name=$(basename "$t")
        log=$logdir/$name.log
        # nouserintercepts: test_enomem brings its own malloc (failmalloc); valgrind must
        # leave it in place and watch the glibc allocator underneath instead.
        valgrind --error-exitcode=99 --leak-check=full --track-origins=yes \
                --soname-synonyms=somalloc=nouserintercepts \
                --errors-for-leak-kinds=definite,possible "${supp[@]}" \
                --log-file="$log.vg" "$t" >"$log" 2>&1
        rc=$?
        errs=$(sed -nE 's/.*ERROR SUMMARY: ([0-9]+) errors.*/\1/p' "$log.vg" | tail -n 1)
        lost=$(sed -nE 's/.*definitely lost: ([0-9,]+) bytes.*/\1/p' "$log.vg" | tail -n 1)
        summary=$(grep -a -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
        if [ $rc -eq 0 ]; then
                passed=$((passed + 1)); res=ok
        elif [ $rc -eq 77 ]; then
                res="skip"
        else
                failed=$((failed + 1)); res="FAIL (exit $rc)"
        fi
        printf '%-26s %-16s valgrind errors %-4s definitely lost %-8s test: %s\n' "$name" "$res" \
                "${errs:-?}" "${lost:-0}" "${summary:-?}"
        if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
                grep -E '^==[0-9]+== (Invalid|Conditional|Use of|Syscall param|Mismatched|.*definitely lost|.*possibly lost|   at |   by )' "$log.vg" |
                        head -n 30 | sed 's/^/    /'
                echo "    logs: $log $log.vg"
        fi
done
echo
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
