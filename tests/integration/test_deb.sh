#!/usr/bin/env bash
# The Debian package, without a systemd host: `make deb` builds it, its contents and control
# data are what an admin's host gets (paths under /usr, conffiles, the unit's ExecStart, man
# pages, the Nagios plugin), the binaries extracted from it run (`vmguard policy check` on the
# shipped /etc/vmguard skeleton), the unit passes `systemd-analyze verify` against the
# extracted tree, and lintian reports no error and no warning. Nothing is installed on this
# host: the package is unpacked into a temporary directory (dpkg-deb -x).
. "$(dirname "$0")/lib.sh"
require_root
cd "$T_ROOT"

T=$(mktemp -d)
on_exit rm -rf "$T"

# The package build runs the unit tests itself; `make unit` has run them already.
out=$(DEB_BUILD_OPTIONS=nocheck make --no-print-directory deb 2>&1) && rc=0 || rc=$?
check "make deb" test "$rc" -eq 0
[ "$rc" -eq 0 ] || { printf '%s\n' "$out" | tail -n 30 | sed 's/^/#   /'; finish; }
ARCH=$(dpkg --print-architecture)
VERSION=$(dpkg-parsechangelog -S Version)
DEB=build/deb/vmguard_${VERSION}_$ARCH.deb
check "the package is $DEB" test -f "$DEB"

dpkg-deb -c "$DEB" | awk '{print $1, $NF}' | sed 's| \./| /|' >"$T/contents"
has() { # MODE-PREFIX PATH: PATH is in the package, its mode starts with MODE-PREFIX
	grep -qE "^$1[^ ]* $2\$" "$T/contents"
}
check "vmguardd in /usr/sbin, executable" has -rwxr-xr-x /usr/sbin/vmguardd
check "vmguard in /usr/bin, executable" has -rwxr-xr-x /usr/bin/vmguard
check "check_vmguard in the Nagios plugin directory" has -rwxr-xr-x /usr/lib/nagios/plugins/check_vmguard
check "delay accounting on at boot (sysctl.d)" has -rw-r--r-- /usr/lib/sysctl.d/50-vmguard.conf
check "the unit in /lib/systemd/system" has -rw-r--r-- /lib/systemd/system/vmguardd.service
for m in man8/vmguardd.8 man8/vmguard.8 man8/check_vmguard.8 man5/vmguard-policy.5; do
	check "man page $m" has -rw-r--r-- "/usr/share/man/$m.gz"
done
check "examples under /usr/share/doc/vmguard/examples" has -rw-r--r-- /usr/share/doc/vmguard/examples/tenants.d/acme.json
check "/etc/vmguard/host.json" has -rw-r--r-- /etc/vmguard/host.json
check "/etc/vmguard/tenants.d/" has d /etc/vmguard/tenants.d/
check "nothing under /usr/local" bash -c "! grep -q ' /usr/local' '$T/contents'"

dpkg-deb -I "$DEB" control >"$T/control"
dpkg-deb -I "$DEB" conffiles >"$T/conffiles" 2>/dev/null || : >"$T/conffiles"
for f in /etc/vmguard/host.json /etc/vmguard/tenants.d/README /etc/default/vmguardd; do
	check "conffile $f" grep -qx "$f" "$T/conffiles"
done
for lib in libvirt0 libsystemd0 libjansson4; do
	check "Depends on $lib (from shlibs)" grep -qE "^Depends:.* $lib( |,|\$)" "$T/control"
done
check "Recommends libvirt-daemon-system" grep -qx 'Recommends: libvirt-daemon-system' "$T/control"
check "Architecture $ARCH" grep -qx "Architecture: $ARCH" "$T/control"

R=$T/root
dpkg-deb -x "$DEB" "$R"
UNIT=$R/lib/systemd/system/vmguardd.service
check "ExecStart is /usr/sbin/vmguardd" grep -qE '^ExecStart=/usr/sbin/vmguardd( |$)' "$UNIT"
check "ExecStartPre checks the policy with /usr/bin/vmguard" grep -qx 'ExecStartPre=/usr/bin/vmguard policy check' "$UNIT"
check "the unit allows AF_INET and AF_INET6 (metrics, DNS probe)" \
	grep -qE '^RestrictAddressFamilies=.*AF_INET .*AF_INET6' "$UNIT"
# Each of these would block a feature (the unit's comments say which): keep them out.
for d in ProtectKernelTunables ProtectControlGroups RestrictNamespaces PrivateNetwork PrivateTmp PrivateDevices; do
	check "the unit does not set $d" bash -c "! grep -qE '^$d=' '$UNIT'"
done
check "the unit leaves home directories readable (disk sources)" grep -qx 'ProtectHome=read-only' "$UNIT"
check "the extracted vmguard runs" "$R/usr/bin/vmguard" --version
check "the extracted vmguardd runs" "$R/usr/sbin/vmguardd" --help
check "the extracted check_vmguard runs" "$R/usr/lib/nagios/plugins/check_vmguard" -V
out=$("$R/usr/bin/vmguard" policy check --host "$R/etc/vmguard/host.json" --tenants "$R/etc/vmguard/tenants.d" 2>&1) && rc=0 || rc=$?
printf '%s\n' "$out" >"$T/policy-check"
check "vmguard policy check accepts the shipped skeleton (exit $rc)" grep -qx 'configuration OK' "$T/policy-check"
check "the skeleton limits no guest" grep -q 'no tenants: every VM is metered only' "$T/policy-check"
out=$("$R/usr/bin/vmguard" policy check --host "$R/usr/share/doc/vmguard/examples/host.json" \
	--tenants "$R/usr/share/doc/vmguard/examples/tenants.d" 2>&1) && rc=0 || rc=$?
check "the shipped examples pass vmguard policy check" test "$rc" -eq 0

# systemd-analyze verify resolves ExecStart, /bin/kill, targets and man pages inside --root:
# give the extracted tree the host's targets and kill, and man the extracted man pages.
if command -v systemd-analyze >/dev/null; then
	mkdir -p "$R/bin"
	cp /bin/kill "$R/bin/"
	cp -an /lib/systemd/system/. "$R/lib/systemd/system/"
	check "systemd-analyze verify vmguardd.service" \
		env MANPATH="$R/usr/share/man" systemd-analyze verify --root="$R" /lib/systemd/system/vmguardd.service
	score=$(systemd-analyze security --offline=yes "$UNIT" 2>/dev/null | sed -nE 's/.*exposure level for vmguardd.service: ([0-9.]+).*/\1/p')
	echo "# systemd-analyze security --offline=yes: exposure $score"
	check_num "systemd-analyze security exposure" "${score:-x}" -le 6.0
else
	echo "# systemd-analyze not installed: unit not verified"
fi

if command -v lintian >/dev/null; then
	lintian "$DEB" >"$T/lintian" 2>&1 && rc=0 || rc=$?
	sed 's/^/# lintian: /' "$T/lintian"
	check "lintian: no error" bash -c "! grep -q '^E:' '$T/lintian'"
	check "lintian: no warning" bash -c "! grep -q '^W:' '$T/lintian'"
else
	t_fail "lintian installed (lab/deps.sh deb)"
fi
finish
