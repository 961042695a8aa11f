# Sourced by every integration test (through lib.sh, or directly by the tests that keep
# their own check helpers).
T_PREP_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# A test run alone (bash tests/integration/test_X.sh) on a fresh machine prepares what
# tests/run.sh otherwise prepares once: the packages (lab/deps.sh) and the binaries. Both
# are quick when already done (one dpkg-query; make finds everything up to date).
if [ -z "${VMG_TEST_PREPARED:-}" ]; then
	if [ "$(id -u)" -eq 0 ] || [ "${CI:-}" = true ]; then
		"$T_PREP_ROOT/lab/deps.sh" >&2 || { echo "not ok - lab/deps.sh failed"; echo "0 passed, 1 failed"; exit 1; }
	fi
	make -s -C "$T_PREP_ROOT" --no-print-directory run-tests BUILD_ONLY=1 >&2 ||
		{ echo "not ok - build failed"; echo "0 passed, 1 failed"; exit 1; }
	export VMG_TEST_PREPARED=1
fi
