# Helpers for tests/integration/test_*.sh (sourced). A test:
#   . "$(dirname "$0")/lib.sh"
#   require_root; require_cmd virsh ip
#   on_exit ./lab/teardown.sh          # cleanup hooks run in reverse order, even on ^C
#   check "libvirtd answers" virsh -c qemu:///system list
#   check_num "DHCP median (ms)" "$median" -lt 1000
#   finish                              # prints "N passed, N failed"; exit 1 on failures
# Exit 77 (require_*/skip) means skipped: tests/run.sh counts it as a failure under CI=true.
set -u

T_PASSED=0
T_FAILED=0
T_HOOKS=()
T_FINISHED=0
# Repository root, so tests can call ./lab/... and ./build/... from anywhere.
T_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

. "$T_ROOT/tests/integration/prepare.sh"

t_pass() { T_PASSED=$((T_PASSED + 1)); echo "ok - $1"; }
t_fail() { T_FAILED=$((T_FAILED + 1)); echo "not ok - $1"; }

# check DESC CMD [ARG...]: passes when CMD exits 0; on failure shows its output.
check() {
	local desc=$1 out rc
	shift
	out=$("$@" 2>&1) && rc=0 || rc=$?
	if [ $rc -eq 0 ]; then
		t_pass "$desc"
	else
		t_fail "$desc"
		echo "#   command: $* (exit $rc)"
		[ -n "$out" ] && printf '%s\n' "$out" | tail -n 30 | sed 's/^/#   /'
	fi
	return 0
}

# check_num DESC VALUE OP LIMIT: OP is one of -lt -le -gt -ge -eq -ne (or < <= > >= == !=);
# VALUE and LIMIT may be decimals. A VALUE that is not a number fails the check.
check_num() {
	local desc=$1 v=$2 op=$3 lim=$4 aop
	case $op in
	-lt | '<') aop='<' ;; -le | '<=') aop='<=' ;; -gt | '>') aop='>' ;;
	-ge | '>=') aop='>=' ;; -eq | '==') aop='==' ;; -ne | '!=') aop='!=' ;;
	*) t_fail "$desc (bad operator '$op')"; return 0 ;;
	esac
	if ! [[ $v =~ ^-?[0-9]+(\.[0-9]+)?$ ]] || ! [[ $lim =~ ^-?[0-9]+(\.[0-9]+)?$ ]]; then
		t_fail "$desc: '$v' $op '$lim' (not a number)"
		return 0
	fi
	if awk -v a="$v" -v b="$lim" "BEGIN { exit !(a $aop b) }"; then
		t_pass "$desc: $v $op $lim"
	else
		t_fail "$desc: $v $op $lim is false"
	fi
	return 0
}

# skip REASON: exit 77 with the reason as the last line (tests/run.sh prints it).
skip() {
	t_run_hooks
	echo "SKIP: $*"
	exit 77
}

require_root() {
	[ "$(id -u)" -eq 0 ] || skip "needs root"
}

require_cmd() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || skip "needs '$c' (run lab/deps.sh)"
	done
}

# on_exit CMD [ARG...]: run CMD when the test ends (finish, exit, error, INT, TERM),
# last registered first, each once.
on_exit() {
	local q
	printf -v q '%q ' "$@"
	T_HOOKS+=("$q")
}

t_run_hooks() {
	local i
	for ((i = ${#T_HOOKS[@]} - 1; i >= 0; i--)); do
		eval "${T_HOOKS[$i]}" >/dev/null 2>&1 || echo "# cleanup failed: ${T_HOOKS[$i]}"
	done
	T_HOOKS=()
}

t_on_exit() {
	local rc=$?
	t_run_hooks
	# A test that dies before finish must not look clean: report and fail.
	if [ $T_FINISHED -eq 0 ] && [ $rc -ne 77 ]; then
		echo "not ok - test exited early (exit $rc)"
		echo "$T_PASSED passed, $((T_FAILED + 1)) failed"
		[ $rc -eq 0 ] && exit 1
	fi
}
trap t_on_exit EXIT
trap 'exit 130' INT TERM

# finish: runs the cleanup hooks, prints the summary line, exits 1 when a check failed.
finish() {
	t_run_hooks
	T_FINISHED=1
	echo "$T_PASSED passed, $T_FAILED failed"
	[ $T_FAILED -eq 0 ] || exit 1
	exit 0
}

# need_libvirtd: libvirtd answers on the lab URI (started by lab/libvirtd.sh when it does not).
# need_lab_image: the lab guest's kernel and initramfs are built (lab/image.sh, cached).
# Each is a check, so a machine that cannot provide them fails loudly instead of skipping.
need_libvirtd() { check "libvirtd answers (lab/libvirtd.sh start)" "$T_ROOT/lab/libvirtd.sh" start; }
need_lab_image() { check "lab guest image built (lab/image.sh)" "$T_ROOT/lab/image.sh"; }

# free_port: a TCP port nobody listens on (for a daemon under test on 127.0.0.1).
free_port() {
	local p i
	for i in $(seq 100); do
		p=$((20000 + RANDOM % 30000))
		[ -z "$(ss -Hltn "sport = :$p")" ] && { echo "$p"; return 0; }
	done
	return 1
}
# Stops a process this test started: TERM, then KILL if it has not gone after 5 s.
stop_pid() {
	kill "$1" 2>/dev/null || return 0
	local i
	for i in $(seq 50); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -9 "$1" 2>/dev/null
}
# wait_for SECONDS CMD...: polls CMD every 0.2 s until it succeeds.
wait_for() {
	local n=$(($1 * 5)) i
	shift
	for i in $(seq "$n"); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	return 1
}
