/* The sysctl lever (kernel.task_delayacct): its original is journaled, so a daemon killed
 * with SIGKILL while the switch is on has it put back by the next start; an admin's own
 * change meanwhile is kept. Runs on a fake /proc tree and a mkdtemp() state dir. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/macros.h"
#include "controller/act/journal.h"
#include "controller/act/sysctl.h"
#include "tests/fixtures/fake_tree.h"
#include "tests/harness.h"

#define DELAYACCT "kernel/task_delayacct"

static char *read_switch(const char *proc, char *buf, size_t len) {
        return fx_read(proc, "sys/" DELAYACCT, buf, len);
}

/* A daemon that turns the switch on and is then killed: no stop, no restore. */
static void killed_daemon(const char *proc, const char *state) {
        pid_t pid = fork();
        if (pid == 0) {
                struct vmg_journal *j = NULL;
                struct vmg_sysctl *s = NULL;
                if (vmg_journal_open(state, &j) < 0 || vmg_sysctl_new(proc, j, &s) < 0 ||
                    vmg_sysctl_set(s, DELAYACCT, "1") != 1)
                        _exit(1);
                raise(SIGKILL);
                _exit(2);
        }
        int st = 0;
        waitpid(pid, &st, 0);
        CHECK_MSG(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "child status %d", st);
}

int main(void) {
        char tmp[PATH_MAX], proc[PATH_MAX + 8], state[PATH_MAX + 8], buf[32];
        fx_tmpdir(tmp, sizeof tmp);
        snprintf(proc, sizeof proc, "%s/proc", tmp);
        snprintf(state, sizeof state, "%s/state", tmp);
        fx_mkdir(tmp, "proc");
        fx_mkdir(tmp, "state");
        fx_write(proc, "sys/" DELAYACCT, "0\n");

        T_CASE("killed with the switch on: the next start puts 0 back");
        killed_daemon(proc, state);
        CHECK_STR(read_switch(proc, buf, sizeof buf), "1");
        struct vmg_journal *j = NULL;
        struct vmg_sysctl *s = NULL;
        CHECK_INT(vmg_journal_open(state, &j), 0);
        CHECK_INT(vmg_sysctl_new(proc, j, &s), 0);
        CHECK_INT(vmg_journal_count(j), 1);
        const struct vmg_journal_entry *e = vmg_journal_get(j, 0);
        CHECK_STR(e->kind, "sysctl");
        CHECK_STR(e->uuid, "host");
        CHECK_STR(e->original, "0");
        CHECK_STR(e->written, "1");
        CHECK_INT(vmg_sysctl_restore_all(s), 1);
        CHECK_STR(read_switch(proc, buf, sizeof buf), "0");
        CHECK_INT(vmg_journal_count(j), 0);
        vmg_sysctl_free(s);
        vmg_journal_free(j);

        T_CASE("the restart turns it on again: its original is still 0, not its own 1");
        CHECK_INT(vmg_journal_open(state, &j), 0);
        CHECK_INT(vmg_journal_count(j), 0);
        CHECK_INT(vmg_sysctl_new(proc, j, &s), 0);
        CHECK_INT(vmg_sysctl_set(s, DELAYACCT, "1"), 1);
        CHECK_INT(vmg_sysctl_set(s, DELAYACCT, "1"), 0);
        CHECK_STR(vmg_journal_get(j, 0)->original, "0");
        CHECK_INT(vmg_sysctl_restore_all(s), 1);
        CHECK_STR(read_switch(proc, buf, sizeof buf), "0");

        T_CASE("already on before vmguard: nothing journaled, nothing restored");
        fx_write(proc, "sys/" DELAYACCT, "1\n");
        CHECK_INT(vmg_sysctl_set(s, DELAYACCT, "1"), 0);
        CHECK_INT(vmg_journal_count(j), 0);
        CHECK_INT(vmg_sysctl_restore_all(s), 0);
        CHECK_STR(read_switch(proc, buf, sizeof buf), "1");

        T_CASE("an admin's change while vmguard held it is kept");
        fx_write(proc, "sys/" DELAYACCT, "0\n");
        CHECK_INT(vmg_sysctl_set(s, DELAYACCT, "1"), 1);
        fx_write(proc, "sys/" DELAYACCT, "2\n");
        CHECK_INT(vmg_sysctl_restore_all(s), 0);
        CHECK_STR(read_switch(proc, buf, sizeof buf), "2");
        CHECK_INT(vmg_journal_count(j), 0);

        T_CASE("a kernel without the switch");
        char *v = NULL;
        CHECK_INT(vmg_sysctl_set(s, "kernel/no_such_switch", "1"), -ENOENT);
        CHECK_INT(vmg_sysctl_read(s, "kernel/no_such_switch", &v), -ENOENT);
        CHECK_INT(vmg_journal_count(j), 0);
        vmg_sysctl_free(s);
        vmg_journal_free(j);
        fx_rmtree(tmp, "");
        return t_summary();
}
