/* `vmguard policy check`: validate the host and tenant files the daemon would load and print
 * the effective policy, like `nginx -t`. Errors go to stderr as "FILE:LINE:COL: FIELD:
 * message" at the start of the line, the form editors' quickfix lists jump to. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/macros.h"
#include "common/paths.h"
#include "controller/cli/commands.h"
#include "policies/policy.h"


/* Exit statuses: 0 the policy is valid, 1 it is not, 2 the command line is wrong. */
#define EXIT_INVALID 1
#define EXIT_USAGE 2

static void usage(FILE *out) {
        fprintf(out,
                "usage: vmguard policy check [--host FILE] [--tenants DIR] [-q] [TENANT.json...]\n"
                "\n"
                "Validates the host policy and the tenant policies, prints the effective policy\n"
                "(defaults filled in) and \"configuration OK\", or the first error as\n"
                "FILE:LINE:COL: FIELD: message.\n"
                "\n"
                "  --host FILE     host policy (default " VMG_HOST_FILE
                ", built-in defaults\n"
                "                  when that file does not exist)\n"
                "  --tenants DIR   directory of tenant files, *.json (default " VMG_TENANTS_DIR
                ")\n"
                "  -q, --quiet     print only errors and \"configuration OK\"\n"
                "  TENANT.json     tenant files to check; without --tenants only these are\n"
                "                  loaded, with it they replace the directory's file of the\n"
                "                  same name (check a new version against the others)\n"
                "\n"
                "Exit status: 0 valid, 1 invalid, 2 usage error.\n");
}

static const char *base_name(const char *path) {
        const char *s = strrchr(path, '/');
        return s ? s + 1 : path;
}

static void free_list(char **list, size_t n) {
        if (!list)
                return;
        for (size_t i = 0; i < n; i++)
                free(list[i]);
        free(list);
}

static int json_filter(const struct dirent *de) {
        size_t len = strlen(de->d_name);
        return de->d_name[0] != '.' && len > 5 && strcmp(de->d_name + len - 5, ".json") == 0;
}

/* The directory's tenant files, sorted, skipping those a file given on the command line
 * replaces. Same selection as vmg_policy_load(). */
static int list_tenants(const char *dir, char **extra, size_t n_extra, char ***ret,
                        size_t *ret_n) {
        struct dirent **ents = NULL;
        char **list = NULL;
        size_t n = 0;
        int k = scandir(dir, &ents, json_filter, alphasort), r = 0;
        if (k < 0)
                return -errno;
        list = calloc((size_t) k + n_extra + 1, sizeof *list);
        if (!list) {
                r = -ENOMEM;
                goto out;
        }
        for (int i = 0; i < k; i++) {
                bool replaced = false;
                for (size_t j = 0; j < n_extra && !replaced; j++)
                        replaced = strcmp(base_name(extra[j]), ents[i]->d_name) == 0;
                if (replaced)
                        continue;
                size_t sz = strlen(dir) + strlen(ents[i]->d_name) + 2;
                list[n] = malloc(sz);
                if (!list[n]) {
                        r = -ENOMEM;
                        goto out;
                }
                snprintf(list[n++], sz, "%s/%s", dir, ents[i]->d_name);
        }
        for (size_t j = 0; j < n_extra; j++) {
                list[n] = strdup(extra[j]);
                if (!list[n]) {
                        r = -ENOMEM;
                        goto out;
                }
                n++;
        }
        *ret = TAKE_PTR(list);
        *ret_n = n;
out:
        free_list(list, n);
        for (int i = 0; i < k; i++)
                free(ents[i]);
        free(ents);
        return r;
}

static int policy_check(int argc, char **argv) {
        const char *host = NULL, *tenants = NULL;
        bool quiet = false, host_given = false, tenants_given = false;
        char **files = NULL, **list = NULL;
        size_t n_files = 0, n_list = 0;
        struct vmg_policy *p = NULL;
        struct vmg_policy_error err = { 0 };
        int r, status = EXIT_USAGE;

        files = calloc((size_t) argc + 1, sizeof *files);
        if (!files) {
                fprintf(stderr, "vmguard: out of memory\n");
                return EXIT_INVALID;
        }
        for (int i = 1; i < argc; i++) {
                const char *a = argv[i];
                if (strcmp(a, "--host") == 0 || strcmp(a, "--tenants") == 0) {
                        if (i + 1 >= argc) {
                                fprintf(stderr, "vmguard policy check: %s needs an argument\n", a);
                                goto out;
                        }
                        if (a[2] == 'h')
                                host = argv[++i], host_given = true;
                        else
                                tenants = argv[++i], tenants_given = true;
                } else if (strncmp(a, "--host=", 7) == 0) {
                        host = a + 7, host_given = true;
                } else if (strncmp(a, "--tenants=", 10) == 0) {
                        tenants = a + 10, tenants_given = true;
                } else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
                        quiet = true;
                } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
                        usage(stdout);
                        status = 0;
                        goto out;
                } else if (strcmp(a, "--") == 0) {
                        for (i++; i < argc; i++)
                                files[n_files++] = argv[i];
                } else if (a[0] == '-' && a[1]) {
                        fprintf(stderr, "vmguard policy check: unknown option %s\n", a);
                        usage(stderr);
                        goto out;
                } else {
                        files[n_files++] = argv[i];
                }
        }

        /* Absent defaults are normal on a fresh install: the daemon then runs on built-in
         * defaults and meters every VM without limits. An absent file the user named is an
         * error. */
        if (!host_given) {
                if (access(VMG_HOST_FILE, F_OK) == 0)
                        host = VMG_HOST_FILE;
                else if (!quiet)
                        fprintf(stderr, "vmguard: %s does not exist, using built-in host defaults\n",
                                VMG_HOST_FILE);
        }
        if (!tenants_given && n_files == 0) {
                if (access(VMG_TENANTS_DIR, F_OK) == 0)
                        tenants = VMG_TENANTS_DIR;
                else if (!quiet)
                        fprintf(stderr, "vmguard: %s does not exist, no tenants\n",
                                VMG_TENANTS_DIR);
        }

        if (tenants) {
                r = list_tenants(tenants, files, n_files, &list, &n_list);
                if (r < 0) {
                        fprintf(stderr, "%s: cannot read tenant directory: %s\n", tenants,
                                strerror(-r));
                        status = EXIT_INVALID;
                        goto out;
                }
        }
        r = vmg_policy_load_files(host, (const char *const *) (tenants ? list : files),
                                  tenants ? n_list : n_files, &p, &err);
        if (r < 0) {
                char buf[1024];
                fprintf(stderr, "%s\n", vmg_policy_error_format(&err, buf, sizeof buf));
                status = EXIT_INVALID;
                goto out;
        }
        if (!quiet)
                vmg_policy_print(p, stdout);
        printf("configuration OK\n");
        status = 0;
out:
        vmg_policy_free(p);
        free_list(list, n_list);
        free(files);
        return status;
}

int cmd_policy(int argc, char **argv) {
        if (argc < 2) {
                usage(stderr);
                return EXIT_USAGE;
        }
        if (strcmp(argv[1], "check") == 0)
                return policy_check(argc - 1, argv + 1);
        if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
            strcmp(argv[1], "-h") == 0) {
                usage(stdout);
                return 0;
        }
        fprintf(stderr, "vmguard policy: unknown command \"%s\"\n", argv[1]);
        usage(stderr);
        return EXIT_USAGE;
}
