/* Hostile and careless inputs, run as a user would run the built program: each is refused with one
 * clear line and a non-zero exit, never a crash or a hang, and no earlier file is damaged. Every
 * command runs under timeout(1), so a regression that hangs fails here instead of at ctest's limit. */
#define _GNU_SOURCE /* vasprintf, popen (run_support.h) */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "randygpt/checkpoint.h"
#include "randygpt/text.h"
#include "run_support.h"

#define DIR RG_TEST_TMPDIR "/hostile"
#define CORPUS DIR "/corpus.txt"
#define CKPT DIR "/model.ckpt"
#define OUT DIR "/out.txt"
#define ERR DIR "/err.txt"
#define FIX RG_TEST_FIXTURE_DIR
#define TRAIN "train --backend-dir " RG_TEST_PLUGIN_DIR " --threads 1 --preset tiny --batch 2 " \
              "--sample-tokens 0 "

/* Runs `randygpt ARGS` (at most 60 s) with stdout to out and stderr in ERR; returns its exit
 * status, 137 when it had to be stopped. ARGS start with a string literal. */
#define run_to(out, ...) run_shell_to(out, ERR, "timeout -s KILL 60 " RG_TEST_BIN " " __VA_ARGS__)
#define run(...) run_to(OUT, __VA_ARGS__)

/* path still holds exactly the n bytes of want. */
static void assert_file_is(const char *path, const void *want, size_t n) {
    size_t got_n;
    char *got = read_text_n(path, &got_n);
    assert_non_null(got);
    assert_int_equal(got_n, n);
    assert_memory_equal(got, want, n);
    free(got);
}

/* stderr was exactly one line, holding want. */
static void assert_one_line(const char *want) {
    char *err = read_text_n(ERR, NULL);
    assert_non_null(err);
    if (!strstr(err, want)) fail_msg("expected '%s' in stderr: %s", want, err);
    char *nl = strchr(err, '\n');
    if (!nl || nl[1] != '\0') fail_msg("expected one line on stderr, got: %s", err);
    free(err);
}

static int setup(void **state) {
    (void)state;
    mkdir(DIR, 0755);
    FILE *f = fopen(CORPUS, "wb");
    if (!f) return -1;
    for (int i = 0; i < 400; i++) fprintf(f, "line %d of a small corpus, with words to learn.\n", i);
    if (fclose(f) != 0) return -1;
    /* a real checkpoint that the later tests must never damage */
    return run(TRAIN "--data " CORPUS " --iters 2 --eval-every 2 --checkpoint " CKPT) == 0 ? 0 : -1;
}

/* ---- data files ---- */

static void test_data_not_regular(void **state) {
    (void)state;
    assert_int_equal(run(TRAIN "--data /dev/zero --checkpoint " DIR "/z.ckpt"), 1);
    assert_one_line("data file /dev/zero is a character device, not a regular file");
    const char *fifo = DIR "/data.fifo";
    unlink(fifo);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(run(TRAIN "--data %s --checkpoint " DIR "/z.ckpt", fifo), 1);
    assert_one_line("is a FIFO, not a regular file");
    unlink(fifo);
    assert_int_equal(access(DIR "/z.ckpt", F_OK), -1);
}

/* ---- checkpoints read ---- */

static void test_checkpoint_fifo(void **state) {
    (void)state;
    const char *fifo = DIR "/ckpt.fifo";
    unlink(fifo);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(run("generate --checkpoint %s --tokens 5", fifo), 1);
    assert_one_line("checkpoint " DIR "/ckpt.fifo is a FIFO, not a regular file");
    assert_int_equal(run(TRAIN "--data " CORPUS " --resume %s --checkpoint " DIR "/r.ckpt", fifo), 1);
    assert_one_line("is a FIFO, not a regular file");
    unlink(fifo);
}

/* The crafted header of the report (sizes whose byte count wraps around 2^64, correct checksum)
 * under generate and train --resume. */
static void test_checkpoint_wrapping_sizes(void **state) {
    (void)state;
    size_t n0;
    char *orig = read_text_n(CKPT, &n0);
    assert_non_null(orig);
    const uint64_t V = 1, maxT = 262143, C = 65536, L = 89478485;
    uint64_t np = 2 * V * C + maxT * C + 12 * L * C * C, body = 12 * np; /* wraps to 768 KiB */
    size_t n = 128 + 1 + 8 + (size_t)body + 8;
    uint8_t *buf = calloc(1, n);
    assert_non_null(buf);
    memcpy(buf, orig, 128);
    int32_t f[5] = {(int32_t)V, (int32_t)maxT, (int32_t)C, 1, (int32_t)L};
    memcpy(buf + 12, f, sizeof f);
    buf[128] = '\n';
    memcpy(buf + 129, &np, 8);
    uint64_t h = rg_fnv1a64(RG_FNV1A64_INIT, buf, n - 8);
    memcpy(buf + n - 8, &h, 8);
    write_bytes(DIR "/wrap.ckpt", buf, n);
    assert_int_equal(run("generate --checkpoint " DIR "/wrap.ckpt --tokens 5"), 1);
    assert_one_line("has inconsistent sizes: bad model config: a size is over its limit");
    assert_int_equal(run(TRAIN "--data " CORPUS " --resume " DIR "/wrap.ckpt"), 1);
    assert_one_line("over its limit");
    /* the crafted file was not rewritten */
    assert_file_is(DIR "/wrap.ckpt", buf, n);
    free(buf);
    free(orig);
}

/* ---- checkpoints written ---- */

static void test_checkpoint_over_corpus_or_device(void **state) {
    (void)state;
    size_t n0;
    char *before = read_text_n(CORPUS, &n0);
    assert_non_null(before);
    assert_int_equal(run(TRAIN "--data " CORPUS " --iters 2 --checkpoint " CORPUS), 2);
    assert_one_line("is the training corpus");
    const char *link_path = DIR "/corpus.link";
    unlink(link_path);
    assert_int_equal(link(CORPUS, link_path), 0);
    assert_int_equal(run(TRAIN "--data " CORPUS " --iters 2 --checkpoint %s", link_path), 2);
    assert_one_line("is the training corpus");
    unlink(link_path);
    assert_file_is(CORPUS, before, n0);
    free(before);

    assert_int_equal(run(TRAIN "--data " CORPUS " --iters 2 --checkpoint /dev/null"), 2);
    assert_one_line("checkpoint /dev/null is a character device, not a regular file");
    const char *fifo = DIR "/out.fifo";
    unlink(fifo);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(run(TRAIN "--data " CORPUS " --iters 2 --checkpoint %s", fifo), 2);
    assert_one_line("is a FIFO, not a regular file: refusing to replace it");
    struct stat sb;
    assert_int_equal(lstat(fifo, &sb), 0);
    assert_true(S_ISFIFO(sb.st_mode));
    unlink(fifo);
    assert_int_equal(run(TRAIN "--data " CORPUS " --iters 2 --checkpoint " DIR), 2);
    assert_one_line("is a directory");
}

/* ---- plugins ---- */

/* Every hostile plugin gets its own row and the listing goes on to the end. */
static void test_backends_lists_hostile_plugins(void **state) {
    (void)state;
    assert_int_equal(run("backends --backend-dir " FIX " --threads 1 --timeout 2"), 0);
    char *out = read_text_n(OUT, NULL);
    assert_non_null(out);
    static const struct {
        const char *name, *want;
    } rows[] = {
        {"hostile_exit_entry", "called exit(3) while it was loaded or created an instance"},
        {"hostile_segv_entry", "crashed (SIGSEGV)"},
        {"hostile_abort_create", "crashed (SIGABRT)"},
        {"hostile_hang_create", "did not finish in 2 s"},
        {"hostile_err", "cannot create an instance with 1 thread"},
        {"hostile_describe", "runs:   x?x?xxx"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const char *row = strstr(out, rows[i].name);
        if (!row) {
            fail_msg("no row for %s in: %s", rows[i].name, out);
            return;
        }
        const char *next = strstr(row + 1, "\nhostile_"); /* the rows after it */
        const char *hit = strstr(row, rows[i].want);
        if (!hit || (next && hit > next)) fail_msg("row of %s lacks '%s': %s", rows[i].name, rows[i].want, out);
    }
    assert_non_null(strstr(out, "\nsingle "));       /* the listing went on past them */
    assert_non_null(strstr(out, " usable\n"));        /* to its last line */
    assert_null(strchr(out, '\033'));                 /* no plugin's control bytes */
    free(out);
}

/* The same plugins under train: one line each, non-zero exit, nothing written. */
static void test_train_refuses_hostile_plugins(void **state) {
    (void)state;
    static const struct {
        const char *file, *want;
    } cases[] = {
        {"hostile_abort_create", "crashed (SIGABRT) while it was loaded or created an instance"},
        {"hostile_exit_entry", "called exit(3)"},
        {"hostile_segv_entry", "crashed (SIGSEGV)"},
        {"hostile_err", "hostile_err.so: x?x?xxxx"},
    };
    unlink(DIR "/p.ckpt"); /* left by an earlier run that failed */
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(run(TRAIN "--data " CORPUS " --iters 2 --checkpoint " DIR "/p.ckpt "
                             "--backend " FIX "/%s.so", cases[i].file), 1);
        assert_one_line(cases[i].want);
        assert_int_equal(access(DIR "/p.ckpt", F_OK), -1);
    }
    /* an unterminated describe() string is cut and cleaned, and training goes on */
    assert_int_equal(run(TRAIN "--data " CORPUS " --iters 2 --checkpoint " DIR "/p.ckpt "
                         "--backend " FIX "/hostile_describe.so"), 0);
    char *out = read_text_n(OUT, NULL);
    assert_non_null(strstr(out, "backend x?x?xxx"));
    assert_null(strchr(out, '\033'));
    free(out);
    unlink(DIR "/p.ckpt");
}

/* Another file with content, the corpus or a checkpoint, under --checkpoint, export or --log:
 * refused with one line before anything is written, and left as it was. */
static void test_nothing_written_over_data(void **state) {
    (void)state;
    size_t nc, nk;
    char *corpus = read_text_n(CORPUS, &nc), *ckpt = read_text_n(CKPT, &nk);
    assert_non_null(corpus);
    assert_non_null(ckpt);
    const char *text = DIR "/notes.txt";
    write_bytes(text, "my notes\n", 9);
    assert_int_equal(run(TRAIN "--data " CORPUS " --iters 2 --checkpoint %s", text), 2);
    assert_one_line("is a file that is not a randyGPT checkpoint: refusing to replace it");
    assert_file_is(text, "my notes\n", 9);
    assert_int_equal(run("export " CKPT " " CORPUS), 1);
    assert_one_line("is a file that is not a randyGPT checkpoint");
    assert_int_equal(run(TRAIN "--data " CORPUS " --iters 2 --checkpoint " DIR "/o.ckpt --log "
                         CORPUS), 1);
    assert_one_line("log " CORPUS " is the training corpus: refusing to overwrite it");
    assert_int_equal(run(TRAIN "--data " CORPUS " --iters 2 --checkpoint " DIR "/o.ckpt --log "
                         CKPT), 1);
    assert_one_line("is a randyGPT checkpoint: refusing to overwrite it");
    assert_int_equal(run(TRAIN "--data " CORPUS " --iters 2 --checkpoint " DIR "/o.ckpt --log "
                         DIR "/o.ckpt"), 1);
    assert_one_line("is the --checkpoint: refusing to overwrite it");
    assert_file_is(CORPUS, corpus, nc);
    assert_file_is(CKPT, ckpt, nk);
    assert_int_equal(access(DIR "/o.ckpt", F_OK), -1);
    free(corpus);
    free(ckpt);
}

/* ---- text that does not fit ---- */

/* A plugin text that fills its whole buffer is shown cut and marked so, never cut silently. */
static void test_plugin_text_cut_is_marked(void **state) {
    (void)state;
    assert_int_equal(run(TRAIN "--data " CORPUS " --iters 2 --checkpoint " DIR "/p.ckpt "
                         "--backend " FIX "/hostile_err.so"), 1);
    assert_one_line("xxxx" RG_TRUNCATED_MARK "\n");
    assert_int_equal(run(TRAIN "--data " CORPUS " --iters 2 --checkpoint " DIR "/p.ckpt "
                         "--backend " FIX "/hostile_describe.so"), 0);
    char *out = read_text_n(OUT, NULL);
    assert_non_null(out);
    assert_non_null(strstr(out, "xxxx" RG_TRUNCATED_MARK " | threads"));
    free(out);
    unlink(DIR "/p.ckpt");
}

/* Paths longer than PATH_MAX: the message still names all of the path and gives the cause. */
static void test_very_long_paths(void **state) {
    (void)state;
    char *path = malloc(6002);
    assert_non_null(path);
    path[0] = '/';
    memset(path + 1, 'p', 6000);
    path[6001] = '\0';
    static const char *const cmds[] = {
        TRAIN "--data %s --checkpoint " DIR "/long.ckpt",
        TRAIN "--data " CORPUS " --resume %s --checkpoint " DIR "/long.ckpt",
        "generate --checkpoint %s --tokens 5",
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        char *cmd = format("timeout -s KILL 60 " RG_TEST_BIN " %s", cmds[i]);
        assert_int_equal(run_shell_to(OUT, ERR, cmd, path), 1);
        free(cmd);
        char *want = format("%s: File name too long", path);
        assert_one_line(want);
        free(want);
    }
    /* saving to one: refused before training, nothing cut */
    assert_int_equal(run(TRAIN "--data " CORPUS " --iters 2 --checkpoint %s", path), 2);
    assert_one_line("cannot be written: File name too long");
    char *err = read_text_n(ERR, NULL);
    assert_non_null(strstr(err, path));
    assert_null(strstr(err, RG_TRUNCATED_MARK));
    free(err);
    free(path);
    assert_int_equal(access(DIR "/long.ckpt", F_OK), -1);
}

/* A wrong backend name among many long ones: the list of names found is not dropped; what does
 * not fit in the message is marked. */
static void test_many_backends_hint(void **state) {
    (void)state;
    const char *dir = DIR "/many";
    mkdir(dir, 0755);
    for (int i = 0; i < 60; i++) {
        char *link_path = format("%s/%0200d.so", dir, i);
        unlink(link_path);
        assert_int_equal(symlink(RG_TEST_PLUGIN_DIR "/single.so", link_path), 0);
        free(link_path);
    }
    assert_int_equal(run(TRAIN "--data " CORPUS " --iters 2 --backend-dir %s --backend nosuch "
                         "--checkpoint " DIR "/p.ckpt", dir), 1);
    assert_one_line("backend 'nosuch' not found");
    char *err = read_text_n(ERR, NULL);
    assert_non_null(strstr(err, "; backends found: "));
    assert_non_null(strstr(err, RG_TRUNCATED_MARK "\n"));
    free(err);
    assert_int_equal(access(DIR "/p.ckpt", F_OK), -1);
}

/* A plugin built for another architecture: said so, instead of glibc's "No such file". */
static void test_foreign_architecture(void **state) {
    (void)state;
    size_t n;
    char *so = read_text_n(FIX "/hostile_err.so", &n);
    assert_non_null(so);
    assert_true(n > 20);
    uint16_t machine;
    memcpy(&machine, so + 18, 2);
    int host_is_arm = machine == 183;
    uint16_t other = host_is_arm ? 62 : 183; /* EM_X86_64 : EM_AARCH64 */
    memcpy(so + 18, &other, 2);
    write_bytes(DIR "/foreign.so", so, n);
    free(so);
    assert_int_equal(run(TRAIN "--data " CORPUS " --iters 2 --checkpoint " DIR "/p.ckpt "
                         "--backend " DIR "/foreign.so"), 1);
    assert_one_line(host_is_arm ? "built for x86_64 (64-bit), this machine is aarch64 (64-bit)"
                                : "built for aarch64 (64-bit), this machine is x86_64 (64-bit)");
}

/* ---- files written ---- */

static void test_write_errors(void **state) {
    (void)state;
    assert_int_equal(run_to("/dev/full", "generate --checkpoint " CKPT " --tokens 50 --backend single"
                            " --backend-dir " RG_TEST_PLUGIN_DIR), 1);
    assert_one_line("randygpt generate: cannot write the generated text: No space left on device");
    assert_int_equal(run_to("/dev/full", "backends --backend-dir " RG_TEST_PLUGIN_DIR), 1);
    assert_one_line("randygpt backends: cannot write standard output: No space left on device");

    /* --log on a full device: one line, and the checkpoint already at the path is untouched */
    size_t n0;
    char *before = read_text_n(CKPT, &n0);
    assert_non_null(before);
    write_bytes(DIR "/log.ckpt", before, n0);
    assert_int_equal(run(TRAIN "--backend single --data " CORPUS " --iters 4 --eval-every 2 "
                         "--checkpoint " DIR "/log.ckpt --log /dev/full"), 1);
    assert_one_line("randygpt train: cannot write log /dev/full: No space left on device");
    assert_file_is(DIR "/log.ckpt", before, n0);
    free(before);
    unlink(DIR "/log.ckpt");
}

/* --log naming a FIFO (no reader) or a directory: one line and exit 1 before training, no hang */
static void test_log_not_regular(void **state) {
    (void)state;
    const char *fifo = DIR "/log.fifo";
    unlink(fifo);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(run(TRAIN "--backend single --data " CORPUS " --iters 2 --checkpoint " DIR
                         "/lf.ckpt --log %s", fifo), 1);
    assert_one_line("randygpt train: log " DIR "/log.fifo is not a regular file");
    assert_int_equal(run(TRAIN "--backend single --data " CORPUS " --iters 2 --checkpoint " DIR
                         "/lf.ckpt --log " DIR), 1);
    assert_one_line("randygpt train: log " DIR " is not a regular file");
    assert_int_not_equal(access(DIR "/lf.ckpt", F_OK), 0);
    unlink(fifo);
}

/* ---- signals ---- */

/* Starts `randygpt train ARGS...` (NULL-terminated) with stdout in OUT and stderr in ERR. */
static pid_t spawn_train(const char *const *args) {
    const char *argv[64] = {RG_TEST_BIN, "train", "--backend-dir", RG_TEST_PLUGIN_DIR, "--threads", "1",
                            "--preset", "tiny", "--batch", "2", "--sample-tokens", "0",
                            "--data", CORPUS};
    int n = 14;
    for (int k = 0; args[k]; k++) argv[n++] = args[k];
    argv[n] = NULL;
    return spawn_to(OUT, ERR, argv);
}

/* Waits until path holds text (at most 30 s). */
static void wait_for_text(const char *path, const char *text) {
    struct timespec nap = {0, 20 * 1000 * 1000};
    for (int k = 0; k < 1500; k++) {
        char *s = read_text_n(path, NULL);
        int found = s && strstr(s, text);
        free(s);
        if (found) return;
        nanosleep(&nap, NULL);
    }
    fail_msg("'%s' never appeared in %s", text, path);
}

/* Waits for pid (at most 10 s); returns its exit status, or -1 if it is still running. */
static int wait_exit(pid_t pid) {
    struct timespec nap = {0, 20 * 1000 * 1000};
    for (int k = 0; k < 500; k++) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 256;
        nanosleep(&nap, NULL);
    }
    return -1;
}

/* A backend that hangs inside a training step: the first signal only asks for a stop (the step
 * never ends), the second stops at once with status 128 + signal, and the checkpoint already at
 * the path is left byte-identical. */
static void interrupt_hung_step(int second, int want_status, const char *want_line) {
    size_t n0;
    char *before = read_text_n(CKPT, &n0);
    assert_non_null(before);
    write_bytes(DIR "/hung.ckpt", before, n0);
    const char *args[] = {"--backend", FIX "/hang.so", "--iters", "5", "--checkpoint",
                          DIR "/hung.ckpt", NULL};
    pid_t pid = spawn_train(args);
    wait_for_text(OUT, "backend ");                 /* set up: the first step is running */
    struct timespec settle = {0, 200 * 1000 * 1000};
    nanosleep(&settle, NULL);
    kill(pid, SIGINT);
    wait_for_text(ERR, "stopping after this step");
    nanosleep(&settle, NULL);
    assert_int_equal(waitpid(pid, NULL, WNOHANG), 0); /* still in the hung step */
    kill(pid, second);
    int status = wait_exit(pid);
    if (status < 0) kill(pid, SIGKILL), waitpid(pid, NULL, 0);
    assert_int_equal(status, want_status);
    char *err = read_text_n(ERR, NULL);
    if (!strstr(err, want_line)) fail_msg("expected '%s' in: %s", want_line, err);
    free(err);
    assert_file_is(DIR "/hung.ckpt", before, n0);
    free(before);
    unlink(DIR "/hung.ckpt");
}

static void test_second_sigint_stops_hung_backend(void **state) {
    (void)state;
    interrupt_hung_step(SIGINT, 130, "SIGINT while a stop was pending: stopped at once");
}

static void test_sigterm_while_pending_stops_at_once(void **state) {
    (void)state;
    interrupt_hung_step(SIGTERM, 143, "SIGTERM while a stop was pending: stopped at once");
}

/* A backend hanging in create (tried in a child): two Ctrl-C end train at once. */
static void test_interrupt_hang_in_create(void **state) {
    (void)state;
    const char *args[] = {"--backend", FIX "/hostile_hang_create.so", "--iters", "5",
                          "--checkpoint", DIR "/hc.ckpt", NULL};
    pid_t pid = spawn_train(args);
    struct timespec settle = {0, 500 * 1000 * 1000};
    nanosleep(&settle, NULL);
    kill(pid, SIGINT);
    wait_for_text(ERR, "stopping after this step");
    kill(pid, SIGINT);
    int status = wait_exit(pid);
    if (status < 0) kill(pid, SIGKILL), waitpid(pid, NULL, 0);
    assert_int_equal(status, 130);
    assert_int_equal(access(DIR "/hc.ckpt", F_OK), -1);
}

int main(void) {
    let_crashes_die_of_signal();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_data_not_regular),
        cmocka_unit_test(test_checkpoint_fifo),
        cmocka_unit_test(test_checkpoint_wrapping_sizes),
        cmocka_unit_test(test_checkpoint_over_corpus_or_device),
        cmocka_unit_test(test_backends_lists_hostile_plugins),
        cmocka_unit_test(test_train_refuses_hostile_plugins),
        cmocka_unit_test(test_nothing_written_over_data),
        cmocka_unit_test(test_plugin_text_cut_is_marked),
        cmocka_unit_test(test_very_long_paths),
        cmocka_unit_test(test_many_backends_hint),
        cmocka_unit_test(test_foreign_architecture),
        cmocka_unit_test(test_write_errors),
        cmocka_unit_test(test_log_not_regular),
        cmocka_unit_test(test_second_sigint_stops_hung_backend),
        cmocka_unit_test(test_sigterm_while_pending_stops_at_once),
        cmocka_unit_test(test_interrupt_hang_in_create),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
