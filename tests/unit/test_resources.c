/* The resource vocabulary (policies/resources.c): every resource has a key that maps back to
 * it and a unit; unknown keys map to VMG_RES_COUNT. */
#include <string.h>

#include "policies/resources.h"
#include "tests/harness.h"

int main(void) {
        T_CASE("key round trip, units");
        for (int k = 0; k < VMG_RES_COUNT; k++) {
                CHECK_INT(vmg_resource_from_name(vmg_resource_name(k)), k);
                CHECK(strcmp(vmg_resource_name(k), "unknown") != 0);
                CHECK(*vmg_resource_unit(k));
        }
        T_CASE("examples");
        CHECK_STR(vmg_resource_name(VMG_RES_DISK_WRITE_BPS), "disk_write");
        CHECK_STR(vmg_resource_unit(VMG_RES_NET_TX_BPS), "bits/s");
        CHECK_STR(vmg_resource_unit(VMG_RES_CPU), "cores");
        T_CASE("unknown");
        CHECK_INT(vmg_resource_from_name("disk_writes"), VMG_RES_COUNT);
        CHECK_INT(vmg_resource_from_name(""), VMG_RES_COUNT);
        CHECK_STR(vmg_resource_unit(VMG_RES_COUNT), "");
        CHECK_STR(vmg_resource_name(VMG_RES_COUNT), "unknown");
        return t_summary();
}
