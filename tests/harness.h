/* A minimal table-friendly test harness. Each test binary ends with a line
 * "N passed, N failed" that the runner adds up; exit status is non-zero on any failure. */
#pragma once
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int t_passed, t_failed, t_skipped;
static const char *t_case = "";

#define T_CASE(name) (t_case = (name))

#define CHECK_MSG(cond, ...)                                                         \
        do {                                                                         \
                if (cond) {                                                          \
                        t_passed++;                                                  \
                } else {                                                             \
                        t_failed++;                                                  \
                        fprintf(stderr, "FAIL %s:%d [%s]: %s: ", __FILE__, __LINE__, \
                                t_case, #cond);                                      \
                        fprintf(stderr, __VA_ARGS__);                                \
                        fputc('\n', stderr);                                         \
                }                                                                    \
        } while (0)
#define CHECK(cond) CHECK_MSG(cond, "%s", "")
#define CHECK_INT(a, b)                                                               \
        do {                                                                          \
                long long _a = (long long) (a), _b = (long long) (b);                 \
                CHECK_MSG(_a == _b, "%s = %lld, expected %lld", #a, _a, _b);          \
        } while (0)
#define CHECK_U64(a, b)                                                               \
        do {                                                                          \
                unsigned long long _a = (a), _b = (b);                                \
                CHECK_MSG(_a == _b, "%s = %llu, expected %llu", #a, _a, _b);          \
        } while (0)
#define CHECK_STR(a, b)                                                               \
        do {                                                                          \
                const char *_a = (a), *_b = (b);                                      \
                CHECK_MSG(_a && _b && strcmp(_a, _b) == 0, "%s = \"%s\", expected \"%s\"", \
                          #a, _a ? _a : "(null)", _b ? _b : "(null)");                \
        } while (0)
#define CHECK_CONTAINS(hay, needle)                                                   \
        do {                                                                          \
                const char *_h = (hay), *_n = (needle);                               \
                CHECK_MSG(_h && strstr(_h, _n), "\"%s\" does not contain \"%s\"",     \
                          _h ? _h : "(null)", _n);                                    \
        } while (0)
#define CHECK_NEAR(a, b, eps)                                                         \
        do {                                                                          \
                double _a = (a), _b = (b);                                            \
                CHECK_MSG(fabs(_a - _b) <= (eps), "%s = %g, expected %g +- %g", #a,   \
                          _a, _b, (double) (eps));                                    \
        } while (0)

/* A prerequisite of the current case (root, PSI, a tool): true when there. Missing, it is
 * a failure under CI=true (the suite must run everything there) and outside CI a skip with
 * its reason, counted in the summary line. Use: if (t_require(cond, "needs root")) {...} */
static inline int t_require(int have, const char *what) {
        if (have)
                return 1;
        const char *ci = getenv("CI");
        if (ci && strcmp(ci, "true") == 0) {
                t_failed++;
                fprintf(stderr, "FAIL [%s]: prerequisite missing under CI=true: %s\n", t_case, what);
        } else {
                t_skipped++;
                fprintf(stderr, "SKIP [%s]: %s (a failure under CI=true)\n", t_case, what);
        }
        return 0;
}

static inline int t_summary(void) {
        if (t_skipped)
                printf("%d passed, %d failed, %d cases skipped (see SKIP lines)\n", t_passed, t_failed, t_skipped);
        else
                printf("%d passed, %d failed\n", t_passed, t_failed);
        return t_failed ? 1 : (t_passed ? 0 : 1); /* a test binary that checked nothing fails */
}
