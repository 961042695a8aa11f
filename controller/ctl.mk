# The control socket (server in the daemon, client in `vmguard status|explain` and
# check_vmguard) and the Nagios/Icinga plugin.
# CTLSOCK_SRCS goes into vmguardd (it uses vmg_resource_name from the policy module);
# CTL_CLI_SRCS into vmguard (controller/programs.mk owns both lists).
CTLSOCK_SRCS := controller/ctlsock.c
CTL_CLI_SRCS := controller/cli_status.c controller/ctlclient.c

$(eval $(call program,check_vmguard,controller/check_vmguard.c controller/ctlclient.c $(COMMON_SRCS)))

$(eval $(call unit_test,test_ctlsock,tests/unit/test_ctlsock.c $(CTLSOCK_SRCS) controller/ctlclient.c policies/policy.c policies/units.c $(COMMON_SRCS)))
$(eval $(call unit_test,test_check_vmguard,tests/unit/test_check_vmguard.c controller/ctlclient.c $(COMMON_SRCS)))
