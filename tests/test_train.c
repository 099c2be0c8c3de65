/* Tests of `randygpt train` and `randygpt generate`, run as the built program on a small generated
 * corpus with the tiny preset: reproducible losses, exact resume, Ctrl-C, and one-line refusals of
 * bad options. */
#define _GNU_SOURCE /* vasprintf, popen (run_support.h) */
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "randygpt/checkpoint.h"
#include "run_support.h"

#define DIR RG_TEST_TMPDIR "/train"
#define CORPUS DIR "/corpus.txt"
#define OUT DIR "/out.txt"
#define ERR DIR "/err.txt"
/* small and fast: the tiny preset at batch 4 */
#define COMMON "--backend single --backend-dir " RG_TEST_PLUGIN_DIR " --threads 1 --preset tiny " \
               "--batch 4 --data " CORPUS " --sample-tokens 0"

/* Runs `randygpt ARGS` with stdout in OUT and stderr in ERR; returns its exit status. ARGS start
 * with a string literal. */
#define run(...) run_shell_to(OUT, ERR, RG_TEST_BIN " " __VA_ARGS__)

/* The "loss" and "val_loss" fields of a --log file, one "step loss [val]" line each. */
static char *losses_of(const char *log_path) {
    char *log = read_text(log_path);
    assert_non_null(log);
    size_t cap = strlen(log) + 1, len = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    out[0] = '\0';
    for (char *line = strtok(log, "\n"); line; line = strtok(NULL, "\n")) {
        char *step = strstr(line, "\"step\":"), *loss = strstr(line, "\"loss\":");
        char *val = strstr(line, "\"val_loss\":"), *lr = strstr(line, ",\"lr\":");
        assert_non_null(step);
        assert_non_null(loss);
        assert_non_null(lr);
        /* copy from "step" up to ",\"lr\"": step, loss and val_loss when present */
        size_t n = (size_t)(lr - step);
        assert_true(len + n + 2 <= cap);
        memcpy(out + len, step, n);
        len += n;
        out[len++] = '\n';
        out[len] = '\0';
        (void)val;
    }
    free(log);
    return out;
}

static int setup(void **state) {
    (void)state;
    mkdir(DIR, 0755);
    return write_word_corpus(CORPUS);
}

static void test_same_seed_same_losses(void **state) {
    (void)state;
    assert_int_equal(run("train " COMMON " --iters 10 --eval-every 5 --seed 7 --checkpoint " DIR
                         "/a.ckpt --log " DIR "/a.log"), 0);
    assert_int_equal(run("train " COMMON " --iters 10 --eval-every 5 --seed 7 --checkpoint " DIR
                         "/b.ckpt --log " DIR "/b.log"), 0);
    assert_int_equal(run("train " COMMON " --iters 10 --eval-every 5 --seed 8 --checkpoint " DIR
                         "/c.ckpt --log " DIR "/c.log"), 0);
    char *a = losses_of(DIR "/a.log"), *b = losses_of(DIR "/b.log"), *c = losses_of(DIR "/c.log");
    assert_int_equal(count_lines(a), 10);
    assert_non_null(strstr(a, "\"step\":5,\"loss\":"));
    assert_non_null(strstr(a, "\"val_loss\":"));  /* evaluated at steps 5 and 10 */
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);  /* another seed, other batches and weights */

    /* the first loss of a fresh model is close to ln(V): near-uniform predictions */
    rg_model m;
    rg_vocab v;
    rg_train_state st;
    char err[512];
    assert_int_equal(rg_checkpoint_load(DIR "/a.ckpt", &m, &v, &st, err, sizeof err), 0);
    assert_int_equal(st.step, 10);
    double first = strtod(strstr(a, "\"loss\":") + 7, NULL);
    assert_true(fabs(first - log((double)v.V)) < 0.1);
    rg_model_free(&m);
    free(a);
    free(b);
    free(c);
}

static void test_resume_matches_unbroken_run(void **state) {
    (void)state;
    /* 2k steps in one run, and k steps + resume, with a schedule planned for 2k in both */
    unlink(DIR "/part2.log");  /* a resumed run appends to its log */
    assert_int_equal(run("train " COMMON " --iters 20 --warmup 4 --lr 3e-3 --eval-every 5 --seed 3 "
                         "--checkpoint " DIR "/full.ckpt --log " DIR "/full.log"), 0);
    assert_int_equal(run("train " COMMON " --iters 20 --warmup 4 --lr 3e-3 --eval-every 5 --seed 3 "
                         "--stop-at 10 --checkpoint " DIR "/part.ckpt --log " DIR "/part1.log"), 0);
    /* without --checkpoint the resumed run writes back to the file it came from */
    assert_int_equal(run("train " COMMON " --eval-every 5 --resume " DIR "/part.ckpt --log " DIR
                         "/part2.log"), 0);
    char *out = read_text(OUT);
    assert_non_null(strstr(out, "resume:"));
    free(out);
    char *full = losses_of(DIR "/full.log"), *p1 = losses_of(DIR "/part1.log"),
         *p2 = losses_of(DIR "/part2.log");
    assert_int_equal(count_lines(p1), 10);
    assert_int_equal(count_lines(p2), 10);
    size_t n1 = strlen(p1);
    assert_memory_equal(full, p1, n1);
    assert_string_equal(full + n1, p2);
    /* the losses went down: the resumed run really trained */
    double l1 = strtod(strstr(full, "\"loss\":") + 7, NULL);
    double l20 = strtod(strstr(strstr(full, "\"step\":20,"), "\"loss\":") + 7, NULL);
    assert_true(l20 < l1 - 0.3);
    free(full);
    free(p1);
    free(p2);

    /* and the final checkpoints are the same bytes */
    char *a = read_text(DIR "/full.ckpt"), *b = read_text(DIR "/part.ckpt");
    struct stat sa, sb;
    assert_int_equal(stat(DIR "/full.ckpt", &sa), 0);
    assert_int_equal(stat(DIR "/part.ckpt", &sb), 0);
    assert_int_equal(sa.st_size, sb.st_size);
    assert_memory_equal(a, b, (size_t)sa.st_size);
    free(a);
    free(b);
}

static void test_sigint_saves_and_exits_130(void **state) {
    (void)state;
    unlink(DIR "/int.log");
    unlink(DIR "/int.ckpt");
    const char *const argv[] = {RG_TEST_BIN, "train", "--backend", "single", "--backend-dir",
                                RG_TEST_PLUGIN_DIR, "--threads", "1", "--preset", "tiny", "--batch",
                                "4", "--data", CORPUS, "--iters", "100000", "--checkpoint",
                                DIR "/int.ckpt", "--log", DIR "/int.log", NULL};
    pid_t pid = spawn_to(OUT, ERR, argv);
    /* wait until three steps are logged (at most 30 s), then interrupt */
    assert_true(wait_for_lines(DIR "/int.log", 3, 30) >= 3);
    kill(pid, SIGINT);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 130);

    /* the checkpoint holds the last finished step, the one the log ends with */
    char *log = read_text(DIR "/int.log");
    int logged = count_lines(log);
    free(log);
    rg_model m;
    rg_vocab v;
    rg_train_state ts;
    char err[512];
    assert_int_equal(rg_checkpoint_load(DIR "/int.ckpt", &m, &v, &ts, err, sizeof err), 0);
    assert_int_equal(ts.step, logged);
    assert_int_equal(ts.max_steps, 100000);
    rg_model_free(&m);
}

/* Each bad command line: exit status 2, exactly one line on stderr. */
static void test_bad_options_one_line_exit_2(void **state) {
    (void)state;
    static const char *bad[] = {
        "train --iters 0",
        "train --iters -5",
        "train --iters 12abc",
        "train --iters 99999999999999999999",
        "train --batch 0",
        "train --lr nan",
        "train --lr -1",
        "train --lr",
        "train --warmup -1",
        "train --eval-every 0",
        "train --seed -3",
        "train --preset huge",
        "train --bogus",
        "train stray",
        "train --threads 0",
        "train --data " CORPUS " --preset large --batch 1000000 --micro-batches 1 --backend-dir " RG_TEST_PLUGIN_DIR,
        "train " COMMON " --iters 5 --resume " DIR "/a.ckpt --preset small",
        "train " COMMON " --resume " DIR "/a.ckpt --batch 8",
        "train " COMMON " --resume " DIR "/a.ckpt --iters 5",
        "generate",
        "train " COMMON " --n-embd 66",
        "train " COMMON " --n-embd 48 --n-head 5",
        "train " COMMON " --n-head 0",
        "train " COMMON " --n-layer 2000",
        "train " COMMON " --block-size 0",
        "train " COMMON " --block-size 70000",
        "train " COMMON " --n-embd 16384 --n-layer 1024",
        "train " COMMON " --resume " DIR "/a.ckpt --n-layer 3 --iters 30",
        "generate --checkpoint " DIR "/a.ckpt --temperature -1",
        "export",
        "export " DIR "/a.ckpt",
        "export " DIR "/a.ckpt " DIR "/a.ckpt",
        "export " DIR "/a.ckpt " DIR "/x.weights extra",
        "export --bogus " DIR "/a.ckpt " DIR "/x.weights",
        "generate --checkpoint " DIR "/a.ckpt --top-p 1.5",
        "generate --checkpoint " DIR "/a.ckpt --tokens -1",
        "generate --checkpoint " DIR "/a.ckpt --backend-dir " RG_TEST_PLUGIN_DIR " --prompt 'cat~'",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = run("%s", bad[i]);
        char *err = read_text(ERR);
        if (rc != 2 || count_lines(err) != 1)
            fail_msg("'%s': status %d, stderr: %s", bad[i], rc, err);
        free(err);
    }
    /* the messages say what is wrong */
    run("train --batch 0");
    char *err = read_text(ERR);
    assert_non_null(strstr(err, "--batch must be an integer from 1"));
    free(err);
    run("train " COMMON " --iters 5 --resume " DIR "/a.ckpt --preset small");
    err = read_text(ERR);
    assert_non_null(strstr(err, "preset 'tiny'"));
    assert_non_null(strstr(err, "--resume takes the checkpoint's config"));
    free(err);
    run("generate --checkpoint " DIR "/a.ckpt --backend-dir " RG_TEST_PLUGIN_DIR " --prompt 'cat~'");
    err = read_text(ERR);
    assert_non_null(strstr(err, "prompt byte 0x7e '~' at offset 3"));
    free(err);
}

/* Bad input files: one line, exit status 1. */
static void test_bad_data_one_line(void **state) {
    (void)state;
    assert_int_equal(run("train " COMMON " --data " DIR "/missing.txt"), 1);
    char *err = read_text(ERR);
    assert_int_equal(count_lines(err), 1);
    assert_non_null(strstr(err, "missing.txt"));
    free(err);

    FILE *f = fopen(DIR "/short.txt", "wb");
    assert_non_null(f);
    fputs("far too short for a block of 32 bytes\n", f);
    fclose(f);
    assert_int_equal(run("train " COMMON " --data " DIR "/short.txt"), 1);
    err = read_text(ERR);
    assert_int_equal(count_lines(err), 1);
    assert_non_null(strstr(err, "corpus too short for block size 32: need at least 330 bytes"));
    free(err);

    assert_int_equal(run("generate --checkpoint " CORPUS), 1);
    err = read_text(ERR);
    assert_int_equal(count_lines(err), 1);
    assert_non_null(strstr(err, "bad magic"));
    free(err);
}

static void test_generate_continues_prompt(void **state) {
    (void)state;
    assert_int_equal(run("generate --checkpoint " DIR "/full.ckpt --backend-dir " RG_TEST_PLUGIN_DIR
                         " --prompt 'the cat' --tokens 40 --seed 5"), 0);
    char *a = read_text(OUT);
    assert_int_equal(strlen(a), 7 + 40 + 1);
    assert_memory_equal(a, "the cat", 7);
    assert_int_equal(run("generate --checkpoint " DIR "/full.ckpt --backend-dir " RG_TEST_PLUGIN_DIR
                         " --prompt 'the cat' --tokens 40 --seed 5"), 0);
    char *b = read_text(OUT);
    assert_string_equal(a, b);  /* the seed fixes the sample */
    /* every generated byte is in the vocabulary of the corpus */
    char *corpus = read_text(CORPUS);
    for (size_t i = 0; i < 47; i++) assert_non_null(strchr(corpus, a[i]));
    free(corpus);
    free(a);
    free(b);
}

/* The best checkpoint holds the step of the lowest validation loss; the summary says so. */
static void test_best_checkpoint_and_summary(void **state) {
    (void)state;
    assert_int_equal(run("train " COMMON " --iters 20 --lr 3e-3 --warmup 4 --eval-every 5 "
                         "--seed 4 --checkpoint " DIR "/best-run.ckpt --log " DIR "/best-run.log"), 0);
    char *log = read_text(DIR "/best-run.log");
    long best_step = 0;
    double best = 1e30;
    for (char *v = strstr(log, "\"val_loss\":"); v; v = strstr(v + 1, "\"val_loss\":")) {
        double x = strtod(v + 11, NULL);
        char *line = v;
        while (line > log && line[-1] != '\n') line--;
        assert_non_null(strstr(line, "\"train_loss\":"));  /* both losses at each evaluation */
        if (x < best) best = x, best_step = strtol(line + 8, NULL, 10);
    }
    free(log);
    assert_true(best_step >= 5);
    rg_model m;
    rg_vocab v;
    rg_train_state st;
    char err[512];
    assert_int_equal(rg_checkpoint_load(DIR "/best-run.best.ckpt", &m, &v, &st, err, sizeof err), 0);
    assert_int_equal(st.step, best_step);
    rg_model_free(&m);
    char *out = read_text(OUT), want[128];
    assert_non_null(strstr(out, "summary: 20 steps in "));
    snprintf(want, sizeof want, "summary: best val loss %.4f at step %ld", best, best_step);
    assert_non_null(strstr(out, want));
    assert_non_null(strstr(out, "peak RSS"));
    assert_null(strstr(out, "--- sample at step"));  /* not a terminal: no samples unless asked */
    free(out);

    /* asked for, samples appear at those evaluations and change no loss */
    assert_int_equal(run("train " COMMON " --iters 20 --lr 3e-3 --warmup 4 --eval-every 5 "
                         "--seed 4 --sample-every 10 --checkpoint " DIR "/sampled.ckpt --log " DIR
                         "/sampled.log"), 0);
    out = read_text(OUT);
    assert_non_null(strstr(out, "--- sample at step 10 ---"));
    assert_non_null(strstr(out, "--- sample at step 20 ---"));
    assert_null(strstr(out, "--- sample at step 5 ---"));
    free(out);
    char *a = losses_of(DIR "/best-run.log"), *b = losses_of(DIR "/sampled.log");
    assert_string_equal(a, b);
    free(a);
    free(b);
}

/* With no --backend, train picks a multi-core backend that loads and says which; a broken plugin
 * of the first name is skipped with its reason. */
static void test_backend_auto(void **state) {
    (void)state;
    const char *quick = "--preset tiny --batch 4 --data " CORPUS " --sample-tokens 0 --iters 2 "
                        "--threads 2 --checkpoint " DIR "/auto.ckpt";
    assert_int_equal(run("train --backend-dir " RG_TEST_PLUGIN_DIR " %s", quick), 0);
    char *out = read_text(OUT);
    assert_non_null(strstr(out, "backend: auto picked openmp: "));
    assert_non_null(strstr(out, "| threads 2 |"));
    free(out);

    /* a folder searched first whose openmp.so is not a plugin */
    mkdir(DIR "/broken", 0755);
    FILE *f = fopen(DIR "/broken/openmp.so", "wb");
    assert_non_null(f);
    fputs("not a shared object\n", f);
    fclose(f);
    assert_int_equal(run("train --backend-dir " DIR "/broken %s", quick), 0);
    out = read_text(OUT);
    assert_non_null(strstr(out, "backend: auto picked pthreads: "));
    assert_non_null(strstr(out, "skipped openmp ("));
    assert_non_null(strstr(out, "| threads 2 |"));
    free(out);
    assert_int_equal(run("backends --backend-dir " DIR "/broken --threads 2"), 0);
    out = read_text(OUT);
    assert_non_null(strstr(out, "auto picked pthreads: "));
    free(out);
}

/* The shape options replace the preset's sizes; the checkpoint and generate follow them. */
static void test_shape_options(void **state) {
    (void)state;
    assert_int_equal(run("train " COMMON " --n-embd 48 --n-head 3 --n-layer 1 --block-size 16 "
                         "--iters 3 --checkpoint " DIR "/shape.ckpt"), 0);
    char *out = read_text(OUT);
    assert_non_null(strstr(out, "preset custom (C=48 NH=3 L=1 T=16)"));
    free(out);
    rg_model m;
    rg_vocab v;
    rg_train_state st;
    char err[512];
    assert_int_equal(rg_checkpoint_load(DIR "/shape.ckpt", &m, &v, &st, err, sizeof err), 0);
    assert_int_equal(m.cfg.C, 48);
    assert_int_equal(m.cfg.NH, 3);
    assert_int_equal(m.cfg.L, 1);
    assert_int_equal(m.cfg.maxT, 16);
    assert_int_equal(st.T, 16);
    assert_string_equal(st.preset, "custom");
    rg_model_free(&m);
    assert_int_equal(run("generate --backend-dir " RG_TEST_PLUGIN_DIR " --tokens 40 --checkpoint "
                         DIR "/shape.ckpt"), 0);
    /* one option alone keeps the preset's other sizes: tiny is C=64 NH=4 L=2 T=32 */
    assert_int_equal(run("train " COMMON " --n-layer 1 --iters 1 --checkpoint " DIR "/l1.ckpt"), 0);
    out = read_text(OUT);
    assert_non_null(strstr(out, "preset custom (C=64 NH=4 L=1 T=32)"));
    free(out);
    run("train " COMMON " --n-embd 66");
    char *e = read_text(ERR);
    assert_non_null(strstr(e, "--n-embd 66 is not a multiple of --n-head 4"));
    free(e);
}

#define GEN "generate --backend-dir " RG_TEST_PLUGIN_DIR " --prompt 'the cat' --tokens 60 "

/* An export is a third of the checkpoint and gives the same text; it cannot resume. */
static void test_export_round_trip(void **state) {
    (void)state;
    assert_int_equal(run("export " DIR "/full.ckpt " DIR "/full.weights"), 0);
    struct stat sc, sw;
    assert_int_equal(stat(DIR "/full.ckpt", &sc), 0);
    assert_int_equal(stat(DIR "/full.weights", &sw), 0);
    assert_true(sw.st_size < sc.st_size / 2);
    assert_int_equal(run(GEN "--seed 9 --checkpoint " DIR "/full.ckpt"), 0);
    char *a = read_text(OUT);
    assert_int_equal(run(GEN "--seed 9 --checkpoint " DIR "/full.weights"), 0);
    char *b = read_text(OUT);
    assert_int_equal(strlen(a), 7 + 60 + 1);
    assert_string_equal(a, b);
    free(a);
    free(b);

    rg_model m;
    rg_vocab v;
    rg_train_state st;
    char err[512];
    assert_int_equal(rg_checkpoint_load(DIR "/full.weights", &m, &v, &st, err, sizeof err), 0);
    assert_int_equal(st.weights_only, 1);
    assert_int_equal(st.step, 20);
    rg_model_free(&m);

    assert_int_equal(run("train " COMMON " --resume " DIR "/full.weights --iters 30"), 2);
    char *e = read_text(ERR);
    assert_int_equal(count_lines(e), 1);
    assert_non_null(strstr(e, "weights-only export"));
    free(e);
    /* a flipped byte in an export is caught by its checksum like in a checkpoint */
    char *w = read_text(DIR "/full.weights");
    w[sw.st_size / 2] ^= 1;
    FILE *f = fopen(DIR "/bad.weights", "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(w, 1, (size_t)sw.st_size, f), (size_t)sw.st_size);
    fclose(f);
    free(w);
    assert_int_equal(run(GEN "--checkpoint " DIR "/bad.weights"), 1);
    e = read_text(ERR);
    assert_non_null(strstr(e, "checksum mismatch"));
    free(e);
}

/* --temperature 0 is greedy: the same text whatever the seed. */
static void test_greedy_decoding(void **state) {
    (void)state;
    assert_int_equal(run(GEN "--temperature 0 --seed 1 --checkpoint " DIR "/full.ckpt"), 0);
    char *a = read_text(OUT);
    assert_int_equal(run(GEN "--temperature 0 --seed 2 --checkpoint " DIR "/full.ckpt"), 0);
    char *b = read_text(OUT);
    assert_string_equal(a, b);
    /* sampling with those two seeds differs, so the equality above is the greedy rule's */
    assert_int_equal(run(GEN "--temperature 1 --seed 1 --checkpoint " DIR "/full.ckpt"), 0);
    char *c = read_text(OUT);
    assert_int_equal(run(GEN "--temperature 1 --seed 2 --checkpoint " DIR "/full.ckpt"), 0);
    char *d = read_text(OUT);
    assert_string_not_equal(c, d);
    free(a);
    free(b);
    free(c);
    free(d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_seed_same_losses),
        cmocka_unit_test(test_resume_matches_unbroken_run),
        cmocka_unit_test(test_sigint_saves_and_exits_130),
        cmocka_unit_test(test_bad_options_one_line_exit_2),
        cmocka_unit_test(test_bad_data_one_line),
        cmocka_unit_test(test_generate_continues_prompt),
        cmocka_unit_test(test_export_round_trip),
        cmocka_unit_test(test_shape_options),
        cmocka_unit_test(test_backend_auto),
        cmocka_unit_test(test_best_checkpoint_and_summary),
        cmocka_unit_test(test_greedy_decoding),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
