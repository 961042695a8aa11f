# The policy language: tenant and host files (JSON) into a validated struct vmg_policy.
# POLICY_SRCS is linked into the daemon and the CLI (controller/cli_policy.c is the CLI's
# `policy` subcommand); the module has no program of its own.
POLICY_SRCS := policies/policy.c policies/units.c
$(eval $(call unit_test,test_units,tests/unit/test_units.c policies/units.c))
$(eval $(call unit_test,test_policy,tests/unit/test_policy.c controller/cli_policy.c $(POLICY_SRCS)))
