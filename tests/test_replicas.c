/* Tests of data-parallel training, run as the built program on a small generated corpus with the
 * tiny preset: `--replicas R` and `--micro-batches K` against one pass of one model for every
 * backend, bit-identical repeats, exact resume, bad splits; and, in a build with MPI, `mpirun -np
 * 2` against one process, resume under mpirun (and with another rank count), one writer of every
 * file, and a killed rank.
 *
 * Tolerance: the losses of R replicas, P ranks or K micro-batches equal those of one model in one
 * pass to TOL relative, step for step over 100 steps. Only the order of the fp32 gradient sums
 * differs (measured: 2.4e-7 absolute at losses near 3, i.e. 1e-7 relative, on the Intel Xeon of
 * CI).
 * argv[1], when given, is a cmocka test-name filter (the ThreadSanitizer run takes the pthreads
 * case alone). */
#define _GNU_SOURCE /* realpath; vasprintf, popen (run_support.h) */
#include <dirent.h>
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

/* Every file goes in the working folder, which main makes of its own for each test filter, so
 * that the whole run and the pthreads run alone (ctest -j) never share a file. */
#define HERE "."
#define CORPUS "corpus.txt"
#define OUT HERE "/out.txt"
#define ERR HERE "/err.txt"
#define COMMON "--backend-dir " RG_TEST_PLUGIN_DIR " --preset tiny --batch 4 --data " CORPUS \
               " --sample-tokens 0 --seed 11"
#define TOL 1e-5
#define MAX_STEPS 200

/* Occurrences of needle in s. */
static int count_of(const char *s, const char *needle) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p++) n++;
    return n;
}

/* Runs the shell command PREFIX ARGS (PREFIX: the program, or mpirun and the program) with stdout
 * in OUT and stderr in ERR; returns its exit status. */
#define run(...) run_shell_to(OUT, ERR, __VA_ARGS__)

/* The losses of a --log file, in step order: loss[i] of step i+1; returns how many. */
static int losses_of(const char *log_path, double *loss) {
    char *log = read_text(log_path);
    assert_non_null(log);
    int n = 0;
    for (char *line = strtok(log, "\n"); line && n < MAX_STEPS; line = strtok(NULL, "\n")) {
        char *l = strstr(line, "\"loss\":");
        assert_non_null(l);
        loss[n++] = strtod(l + 7, NULL);
    }
    free(log);
    return n;
}

/* The two logs hold `steps` losses each, equal to TOL relative. */
static void assert_losses_close(const char *a_path, const char *b_path, int steps) {
    double a[MAX_STEPS], b[MAX_STEPS];
    assert_int_equal(losses_of(a_path, a), steps);
    assert_int_equal(losses_of(b_path, b), steps);
    for (int i = 0; i < steps; i++) {
        if (fabs(a[i] - b[i]) > TOL * fabs(a[i]))
            fail_msg("step %d: loss %.9g in %s, %.9g in %s", i + 1, a[i], a_path, b[i], b_path);
    }
    assert_true(a[steps - 1] < a[0] - 0.2);  /* and they trained */
}

static int setup(void **state) {
    (void)state;
    return write_word_corpus(CORPUS);
}

/* Makes RG_TEST_TMPDIR/replicas[-FILTER] and works in it. Returns 0, or -1 with a message. */
static int enter_own_dir(const char *filter) {
    char dir[4096];
    snprintf(dir, sizeof dir, RG_TEST_TMPDIR "/replicas%s%s", filter ? "-" : "", filter ? filter : "");
    mkdir(RG_TEST_TMPDIR, 0755);
    mkdir(dir, 0755);
    if (chdir(dir) != 0) {
        fprintf(stderr, "test_replicas: cannot work in %s\n", dir);
        return -1;
    }
    return 0;
}

/* R = 1 (at 1 or 2 threads), 2 (2 threads) and 4 (4 threads, oversubscribing a 2-core machine) of
 * one backend, and R = 1 with its 4 sequences in 4 micro-batches: the same losses to TOL over 100
 * steps. */
static void replicas_match(const char *backend) {
    char log[4][256];
    static const int R[4] = {1, 2, 4, 1}, micro[4] = {1, 1, 1, 4};
    for (int k = 0; k < 4; k++) {
        int threads = R[k] == 1 && !strcmp(backend, "single") ? 1 : R[k] < 2 ? 2 : R[k];
        snprintf(log[k], sizeof log[k], HERE "/%s-r%d-m%d.log", backend, R[k], micro[k]);
        int rc = run("%s train " COMMON " --backend %s --threads %d --replicas %d --micro-batches %d "
                     "--iters 100 --eval-every 50 --checkpoint " HERE "/%s-r%d.ckpt --log %s",
                     RG_TEST_BIN, backend, threads, R[k], micro[k], backend, R[k], log[k]);
        if (rc != 0) fail_msg("%s --replicas %d --micro-batches %d: status %d: %s", backend, R[k],
                              micro[k], rc, read_text(ERR));
        if (k == 2) {
            char *out = read_text(OUT);
            assert_non_null(strstr(out, "data parallel: 1 rank x 4 replicas, 1 sequences each"));
            free(out);
        }
    }
    for (int k = 1; k < 4; k++) assert_losses_close(log[0], log[k], 100);
}

static void test_replicas_single(void **state) { (void)state, replicas_match("single"); }
static void test_replicas_openmp(void **state) { (void)state, replicas_match("openmp"); }
static void test_replicas_pthreads(void **state) { (void)state, replicas_match("pthreads"); }
static void test_replicas_openblas(void **state) { (void)state, replicas_match("openblas"); }
static void test_replicas_blis(void **state) { (void)state, replicas_match("blis"); }

/* The same replicas and threads twice: the same bytes in the log (but its timings) and checkpoint;
 * and a run split by --stop-at and --resume equals the unbroken one. */
static void test_replicas_repeatable_and_resume_exact(void **state) {
    (void)state;
    unlink(HERE "/part2.log");
#define DP2 RG_TEST_BIN " train " COMMON " --backend pthreads --threads 2 --replicas 2 --iters 20 " \
                        "--eval-every 5"
    assert_int_equal(run(DP2 " --checkpoint " HERE "/a.ckpt --log " HERE "/a.log"), 0);
    assert_int_equal(run(DP2 " --checkpoint " HERE "/b.ckpt --log " HERE "/b.log"), 0);
    assert_int_equal(run(DP2 " --stop-at 10 --checkpoint " HERE "/part.ckpt --log " HERE "/part1.log"),
                     0);
    assert_int_equal(run(RG_TEST_BIN " train " COMMON " --backend pthreads --threads 2 --replicas 2 "
                         "--eval-every 5 --resume " HERE "/part.ckpt --log " HERE "/part2.log"), 0);
    double a[MAX_STEPS], b[MAX_STEPS], p[MAX_STEPS];
    assert_int_equal(losses_of(HERE "/a.log", a), 20);
    assert_int_equal(losses_of(HERE "/b.log", b), 20);
    assert_int_equal(losses_of(HERE "/part1.log", p), 10);
    assert_int_equal(losses_of(HERE "/part2.log", p + 10), 10);
    assert_memory_equal(a, b, 20 * sizeof *a);
    assert_memory_equal(a, p, 20 * sizeof *a);
    char *ca = read_text(HERE "/a.ckpt"), *cb = read_text(HERE "/b.ckpt"), *cp = read_text(HERE "/part.ckpt");
    struct stat sa;
    assert_int_equal(stat(HERE "/a.ckpt", &sa), 0);
    assert_memory_equal(ca, cb, (size_t)sa.st_size);
    assert_memory_equal(ca, cp, (size_t)sa.st_size);
    free(ca);
    free(cb);
    free(cp);
}

/* Splits that do not fit: exit status 2, one line that names the rule. */
static void test_bad_splits(void **state) {
    (void)state;
    static const char *bad[][2] = {
        {"--backend single --threads 4 --replicas 4 --batch 6", "batch 6 does not split over 4 replicas"},
        {"--backend pthreads --threads 3 --replicas 2", "--threads 3 does not split over 2 replicas"},
        {"--backend pthreads --threads 2 --replicas 0", "--replicas must be an integer from 1"},
        {"--backend pthreads --threads 2 --micro-batches 3",
         "a share of 4 sequences does not split into 3 micro-batches"},
        {"--backend pthreads --threads 2 --micro-batches 0", "--micro-batches must be an integer"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = run("%s train " COMMON " --iters 2 --checkpoint " HERE "/bad.ckpt %s", RG_TEST_BIN,
                     bad[i][0]);
        char *err = read_text(ERR);
        if (rc != 2 || count_lines(err) != 1 || !strstr(err, bad[i][1]))
            fail_msg("'%s': status %d, stderr: %s", bad[i][0], rc, err);
        free(err);
    }
}

#ifdef RG_TEST_MPIRUN
/* Under AddressSanitizer the ranks run without leak detection: what OpenMPI allocates and keeps
 * until exit is its own, not this project's (the single-process runs above keep it). */
#if defined(__SANITIZE_ADDRESS__)
#define MPI_ENV "ASAN_OPTIONS=detect_leaks=0 "
#else
#define MPI_ENV ""
#endif

/* mpirun, as root too (CI runs as root), more ranks than cores allowed */
static const char *mpirun(void) {
    return geteuid() == 0 ? MPI_ENV RG_TEST_MPIRUN " --oversubscribe --allow-run-as-root"
                          : MPI_ENV RG_TEST_MPIRUN " --oversubscribe";
}

#define RANK0 HERE "/rank0"
#define RANK1 HERE "/rank1"
#define SOLO RG_TEST_BIN " train " COMMON " --backend single --threads 1 --iters 40 --eval-every 10 --lr 3e-3 --warmup 4"

/* Each rank's folder, the corpus in it as in the folder above (the same relative name). */
static void make_rank_dirs(void) {
    const char *dirs[] = {RANK0, RANK1};
    for (int k = 0; k < 2; k++) {
        char link[256];
        mkdir(dirs[k], 0755);
        snprintf(link, sizeof link, "%s/" CORPUS, dirs[k]);
        if (access(link, R_OK) != 0) assert_int_equal(symlink("../" CORPUS, link), 0);
    }
}

/* mpirun -np 1 in dir0 : -np 1 in dir1, each rank in a folder of its own, relative file names:
 * what a rank writes lands in its own folder. */
static int run_two_ranks(const char *args) {
    make_rank_dirs();
    return run("%s -np 1 -wdir " RANK0 " %s %s : -np 1 -wdir " RANK1 " %s %s", mpirun(), RG_TEST_BIN,
               args, RG_TEST_BIN, args);
}

/* Files in dir other than ., .. and the corpus's link */
static int count_files(const char *dir) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, CORPUS);
    closedir(d);
    return n;
}

static void clear_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    char path[4096];
    for (struct dirent *e; (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
}

/* Two ranks reproduce one process; rank 0 alone prints and writes the log and checkpoints; the
 * run resumes under mpirun, and from a two-rank checkpoint in one process (re-sharded). */
static void test_mpi_two_ranks(void **state) {
    (void)state;
    clear_dir(RANK0);
    clear_dir(RANK1);
    unlink(HERE "/solo.log");
    assert_int_equal(run(SOLO " --checkpoint " HERE "/solo.ckpt --log " HERE "/solo.log"), 0);

#define TRAIN2 "train " COMMON " --backend single --threads 1 --iters 40 --eval-every 10 --lr 3e-3 --warmup 4"
    int rc = run_two_ranks(TRAIN2 " --checkpoint mpi.ckpt --log mpi.log");
    if (rc != 0) fail_msg("mpirun -np 2: status %d: %s", rc, read_text(ERR));
    char *out = read_text(OUT);
    assert_int_equal(count_of(out, "data parallel: 2 ranks x 1 replica, 2 sequences each"), 1);
    assert_int_equal(count_of(out, "step 40: train loss"), 1);
    assert_int_equal(count_of(out, "saved mpi.ckpt"), 4);
    free(out);
    assert_int_equal(count_files(RANK1), 0);  /* rank 1 wrote nothing */
    /* the log, the checkpoint and the best one; no temporary left */
    assert_int_equal(count_files(RANK0), 3);
    assert_losses_close(HERE "/solo.log", RANK0 "/mpi.log", 40);

    /* split by --stop-at and --resume under mpirun; the second part appends to its log */
    rc = run_two_ranks(TRAIN2 " --stop-at 20 --checkpoint part.ckpt --log part.log");
    assert_int_equal(rc, 0);
    assert_int_equal(run("cp " RANK0 "/part.ckpt " HERE "/part-np2.ckpt"), 0);
    /* every rank reads the checkpoint (by a name that leads there from either rank's folder);
     * rank 0 alone writes it back */
    rc = run_two_ranks("train " COMMON " --backend single --threads 1 --eval-every 10 --resume ../"
                       RANK0 "/part.ckpt --log part.log");
    if (rc != 0) fail_msg("resume under mpirun: status %d: %s", rc, read_text(ERR));
    assert_losses_close(HERE "/solo.log", RANK0 "/part.log", 40);
    assert_int_equal(count_files(RANK1), 0);

    /* another rank count: one process takes the batch whole */
    unlink(HERE "/resharded.log");
    assert_int_equal(run("cp " HERE "/part-np2.ckpt " HERE "/resharded.ckpt"), 0);
    assert_int_equal(run(SOLO " --resume " HERE "/resharded.ckpt --log " HERE "/resharded.log"), 0);
    double s[MAX_STEPS], r[MAX_STEPS];
    assert_int_equal(losses_of(HERE "/solo.log", s), 40);
    assert_int_equal(losses_of(HERE "/resharded.log", r), 20);
    for (int i = 0; i < 20; i++) assert_true(fabs(s[20 + i] - r[i]) <= TOL * s[20 + i]);
}

/* Starts `mpirun -np 1 (rank0) : -np 1 (rank1)` training for ever in emptied rank folders,
 * checkpointing k.ckpt every 5 steps, in a process group of its own (so that a signal can reach
 * the whole job, as a terminal's does), and waits for its first checkpoint and a few steps more.
 * Returns the group's (mpirun's) pid. */
static pid_t start_long_job(void) {
    clear_dir(RANK0);
    clear_dir(RANK1);
    make_rank_dirs();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setpgid(0, 0);
        char cmd[4096];
        snprintf(cmd, sizeof cmd, "exec env %s -np 1 -wdir " RANK0 " %s " TRAIN2 " --iters 100000 "
                 "--eval-every 5 --checkpoint k.ckpt --log k.log : -np 1 -wdir " RANK1 " %s "
                 TRAIN2 " --iters 100000 --eval-every 5 >" OUT " 2>" ERR " </dev/null", mpirun(),
                 RG_TEST_BIN, RG_TEST_BIN);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    setpgid(pid, pid); /* either side may run first */
    /* wait for a checkpoint (step 5) and a few steps more, at most 60 s */
    assert_true(wait_for_lines(RANK0 "/k.log", 8, 60) >= 8);
    return pid;
}

/* Waits at most 60 s for the job to end after what; kills it and fails if it does not. Returns
 * its wait status. */
static int wait_for_job(pid_t pid, const char *what) {
    int st = 0;
    struct timespec nap = {0, 50 * 1000 * 1000};
    for (int k = 0; k < 1200; k++) {
        if (waitpid(pid, &st, WNOHANG) == pid) return st;
        nanosleep(&nap, NULL);
    }
    kill(-pid, SIGKILL);
    waitpid(pid, &st, 0);
    fail_msg("the job did not end within 60 s of %s", what);
    return st;
}

/* Rank 0's k.ckpt loads and holds a step that is a multiple of every (evaluations every 5 steps;
 * 1 for a checkpoint saved on a stop, at any step), at least 5. */
static void assert_checkpoint_whole(int every) {
    rg_model m;
    rg_vocab v;
    rg_train_state ts;
    char why[512];
    if (rg_checkpoint_load(RANK0 "/k.ckpt", &m, &v, &ts, why, sizeof why) != 0) fail_msg("%s", why);
    assert_true(ts.step >= 5 && ts.step % every == 0);
    rg_model_free(&m);
}

/* Rank 1's pid: the randygpt whose working folder is RANK1. */
static pid_t rank1_pid(void) {
    pid_t victim = 0;
    DIR *proc = opendir("/proc");
    assert_non_null(proc);
    for (struct dirent *e; !victim && (e = readdir(proc));) {
        char link[64], cwd[4096];
        long p = strtol(e->d_name, NULL, 10);
        if (p <= 0) continue;
        snprintf(link, sizeof link, "/proc/%ld/cwd", p);
        ssize_t n = readlink(link, cwd, sizeof cwd - 1);
        if (n <= 0) continue;
        cwd[n] = '\0';
        char real1[4096], comm[64] = "";
        snprintf(link, sizeof link, "/proc/%ld/comm", p);
        FILE *f = fopen(link, "r");
        if (f && fgets(comm, sizeof comm, f)) comm[strcspn(comm, "\n")] = '\0';
        if (f) fclose(f);
        /* mpirun itself may work in that folder too */
        if (realpath(RANK1, real1) && !strcmp(cwd, real1) && !strcmp(comm, "randygpt"))
            victim = (pid_t)p;
    }
    closedir(proc);
    assert_true(victim > 0);
    return victim;
}

/* A rank killed in the middle of training ends the job with a message, and the last checkpoint
 * stays whole. */
static void test_mpi_killed_rank(void **state) {
    (void)state;
    pid_t pid = start_long_job();
    pid_t victim = rank1_pid();
    assert_true(victim > 0);
    kill(victim, SIGKILL);
    int st = wait_for_job(pid, "a rank's death");
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) != 0);
    char *err = read_text(ERR);
    assert_non_null(err);
    /* mpirun names the rank and its signal */
    if (!strstr(err, "rank 1") || !strstr(err, "signal 9")) fail_msg("mpirun said: %s", err);
    free(err);
    assert_checkpoint_whole(5);
}

/* Ctrl-C at the terminal of an mpirun job (SIGINT to its whole process group): mpirun ends the
 * job at once (it kills its ranks), after the ranks said that a stop was asked; the checkpoint
 * is whole. SIGINT to one rank alone: every rank stops after the same step, rank 0 saves and says
 * so, and the job exits with 130 or 143. */
static void test_mpi_sigint(void **state) {
    (void)state;
    pid_t pid = start_long_job();
    kill(-pid, SIGINT);
    int st = wait_for_job(pid, "Ctrl-C");
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) != 0);
    char *err = read_text(ERR);
    assert_non_null(err);
    if (!strstr(err, "stopping after this step")) fail_msg("the job said: %s", err);
    free(err);
    assert_checkpoint_whole(1); /* the last evaluation's, or a stop's saved before the kill */

    pid = start_long_job();
    kill(rank1_pid(), SIGINT);
    st = wait_for_job(pid, "a SIGINT to rank 1");
    char *out = read_text(OUT);
    assert_non_null(out);
    /* rank 1 stops for its SIGINT (130), rank 0 for the others' signal, counted as SIGTERM */
    int code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    if ((code != 130 && code != 143) || !strstr(out, "stopped by signal"))
        fail_msg("status %d; rank 0 printed: %s", code, out);
    free(out);
    assert_checkpoint_whole(1);
}
#else
static void test_mpi_sigint(void **state) {
    (void)state;
    print_message("skipped: this build has no MPI (or no mpirun): nothing to stop under mpirun\n");
    skip();
}
#endif

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replicas_single),
        cmocka_unit_test(test_replicas_openmp),
        cmocka_unit_test(test_replicas_pthreads),
        cmocka_unit_test(test_replicas_openblas),
        cmocka_unit_test(test_replicas_blis),
        cmocka_unit_test(test_replicas_repeatable_and_resume_exact),
        cmocka_unit_test(test_bad_splits),
#ifdef RG_TEST_MPIRUN
        cmocka_unit_test(test_mpi_two_ranks),
        cmocka_unit_test(test_mpi_killed_rank),
#endif
        cmocka_unit_test(test_mpi_sigint),
    };
    if (argc > 1) cmocka_set_test_filter(argv[1]);
    if (enter_own_dir(argc > 1 ? argv[1] : NULL) != 0) return 1;
    return cmocka_run_group_tests(tests, setup, NULL);
}
