# The policy language: tenant and host files (JSON) into a validated struct vmg_policy, and the
# resource vocabulary (names, units). Linked into the daemon and the CLI (controller/cli/
# cli_policy.c is `vmguard policy`); the module has no program of its own.
UNITS_SRCS = policies/units.c
POLICY_SRCS = policies/policy.c policies/parse.c policies/tenant.c policies/host.c policies/load.c \
	$(UNITS_SRCS)

UNIT_TESTS += test_units test_policy
test_units_SRCS = tests/unit/test_units.c $(UNITS_SRCS)
test_policy_SRCS = tests/unit/test_policy.c controller/cli/cli_policy.c $(POLICY_SRCS)
