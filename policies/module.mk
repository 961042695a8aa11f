# The policy language: tenant and host files (JSON) into a validated struct vmg_policy, and the
# resource vocabulary (resources.c: keys, words, units, formatting, parsing). Linked into the daemon and the CLI (controller/cli/
# cli_policy.c is `vmguard policy`); the module has no program of its own.
RESOURCES_SRCS = policies/resources.c
# common/json_alloc.c: the parser checks jansson for failed allocations (common/json_alloc.h).
POLICY_SRCS = policies/policy.c policies/parse.c policies/tenant.c policies/host.c policies/load.c \
	$(RESOURCES_SRCS) common/json_alloc.c

UNIT_TESTS += test_units test_resources test_policy
test_units_SRCS = tests/unit/test_units.c $(RESOURCES_SRCS)
test_resources_SRCS = tests/unit/test_resources.c $(RESOURCES_SRCS)
test_policy_SRCS = tests/unit/test_policy.c controller/cli/cli_policy.c $(POLICY_SRCS)
