/* `vmguard top`'s limits column on snapshot fixtures shaped like vmg_manager_snapshot's
 * "vms" elements: every resource the engine limits, throttled vs capped, none, garbage,
 * a resource this CLI does not know, and a buffer too small. */
#include <jansson.h>

#include "common/log.h"
#include "common/macros.h"
#include "controller/cli/top.h"
#include "tests/harness.h"

static const struct {
        const char *name;
        const char *vm; /* one element of the snapshot's "vms" */
        const char *want;
} table_cases[] = {
        { "no resources object (older snapshot)", "{\"name\":\"a\"}", "-" },
        { "resources present but nothing limited",
          "{\"resources\":{\"cpu\":{\"limit\":0,\"cap\":0,\"throttled\":false,\"usage\":0.9,\"suspect\":true}}}", "-" },
        { "cpu cap only", "{\"resources\":{\"cpu\":{\"limit\":0.3,\"cap\":0.3,\"throttled\":false}}}", "cpu 0.30" },
        { "disk write throttled for noise",
          "{\"resources\":{\"disk_write\":{\"limit\":5242880,\"cap\":0,\"throttled\":true}}}", "wr 5.24MB/s*" },
        { "every resource, in resource order whatever the key order",
          "{\"resources\":{\"net_tx\":{\"limit\":1e7},\"net_rx\":{\"limit\":2.5e8},"
          "\"disk_write_iops\":{\"limit\":100},\"disk_read_iops\":{\"limit\":2000},"
          "\"disk_write\":{\"limit\":20971520,\"throttled\":true},\"disk_read\":{\"limit\":800},"
          "\"cpu\":{\"limit\":1.5}}}",
          "cpu 1.50 rd 800B/s wr 21MB/s* rdio 2k/s wrio 100/s rx 250Mbit/s tx 10Mbit/s" },
        { "rounding up to the next prefix", "{\"resources\":{\"net_tx\":{\"limit\":999999}}}", "tx 1Mbit/s" },
        { "huge value keeps the largest prefix", "{\"resources\":{\"disk_read\":{\"limit\":2e15}}}", "rd 2000TB/s" },
        { "non-numbers and negatives are not limits",
          "{\"resources\":{\"cpu\":{\"limit\":\"0.3\"},\"disk_read\":{\"limit\":-1},\"net_rx\":null,"
          "\"net_tx\":{\"limit\":1000}}}",
          "tx 1kbit/s" },
        { "a resource this CLI does not know",
          "{\"resources\":{\"cpu\":{\"limit\":0.5},\"gpu\":{\"limit\":2,\"throttled\":true}}}", "cpu 0.50 gpu 2*" },
};

static void test_format(void) {
        for (size_t i = 0; i < ARRAY_SIZE(table_cases); i++) {
                T_CASE(table_cases[i].name);
                json_error_t err;
                json_t *vm = json_loads(table_cases[i].vm, 0, &err);
                CHECK_MSG(vm != NULL, "fixture: %s", err.text);
                char buf[256];
                CHECK_STR(vmg_top_format_limits(vm, buf, sizeof buf), table_cases[i].want);
                json_decref(vm);
        }
        T_CASE("no guest in the snapshot");
        char buf[64];
        CHECK_STR(vmg_top_format_limits(NULL, buf, sizeof buf), "-");

        T_CASE("truncated to the buffer, still terminated");
        json_t *vm = json_loads("{\"resources\":{\"cpu\":{\"limit\":0.25},\"disk_write\":{\"limit\":5e6}}}", 0, NULL);
        char small[8];
        memset(small, 'x', sizeof small);
        vmg_top_format_limits(vm, small, sizeof small);
        CHECK_STR(small, "cpu 0.2");
        char tiny[1] = { 'x' };
        vmg_top_format_limits(vm, tiny, sizeof tiny);
        CHECK_INT(tiny[0], 0);
        json_decref(vm);
}

static void test_json(void) {
        T_CASE("json: only positive limits, with unit and throttled");
        json_t *vm = json_loads("{\"resources\":{\"cpu\":{\"limit\":0,\"suspect\":true},"
                                "\"disk_write\":{\"limit\":5242880,\"throttled\":true},"
                                "\"net_tx\":{\"limit\":1e7,\"throttled\":false},\"gpu\":{\"limit\":2}}}",
                                0, NULL);
        json_t *j = vmg_top_limits_json(vm);
        CHECK(j != NULL);
        CHECK_INT(json_object_size(j), 3);
        json_t *w = json_object_get(j, "disk_write");
        CHECK_NEAR(json_number_value(json_object_get(w, "limit")), 5242880, 1e-6);
        CHECK_STR(json_string_value(json_object_get(w, "unit")), "bytes/s");
        CHECK(json_is_true(json_object_get(w, "throttled")));
        json_t *t = json_object_get(j, "net_tx");
        CHECK_STR(json_string_value(json_object_get(t, "unit")), "bits/s");
        CHECK(json_is_false(json_object_get(t, "throttled")));
        CHECK_STR(json_string_value(json_object_get(json_object_get(j, "gpu"), "unit")), "");
        CHECK(json_object_get(j, "cpu") == NULL);
        json_decref(j);
        json_decref(vm);

        T_CASE("json: nothing limited is an empty object");
        j = vmg_top_limits_json(NULL);
        CHECK(json_is_object(j) && json_object_size(j) == 0);
        json_decref(j);
}

int main(void) {
        log_set_max_level(LOG_EMERG);
        test_format();
        test_json();
        return t_summary();
}
