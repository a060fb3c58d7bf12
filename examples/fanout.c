/*
 * fanout.c: what weft adds to asyncio's model, the use of every core.
 *
 * asyncio runs all its tasks on one thread, so CPU-bound tasks run one after
 * another however many there are. weft runs tasks on N worker threads and
 * lets idle workers steal queued tasks, so the same program, unchanged,
 * spreads over the cores:
 *
 *     async def spin(seed): ...CPU-bound work...
 *     async def main():
 *         tasks = [asyncio.create_task(spin(i)) for i in range(64)]
 *         await asyncio.gather(*tasks)
 *
 * The fan-out (64 tasks of about 15 ms of xorshift each, spawned by the main
 * task) runs twice: on 1 worker, then on N (argv[1], default all cores). For
 * each run it prints the wall time and how many of the 64 tasks each worker
 * finished; then the speedup and, for the N-worker run, the workers'
 * scheduler counters (weft_worker_stats()). The checksum of the tasks'
 * results must not depend on the number of workers.
 *
 * Usage: fanout [N]   (N = 0 or absent: one worker per core)
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */

#include <weft.h>

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { FANOUT_TASKS = 64, SPIN_MS = 15, MAX_WORKERS = 1024 };

/* One run of the fan-out: its configuration, and what it measured. */
struct run {
  unsigned workers_asked;     /* weft_config_t.workers: 0 = all cores */
  uint64_t rounds;            /* xorshift rounds per task (~SPIN_MS) */
  int workers;                /* workers the runtime really has */
  atomic_uint *per_worker;    /* fan-out tasks finished on each worker */
  weft_worker_stats_t *stats; /* each worker's counters after the fan-out */
  double seconds;             /* wall time from the first spawn to gather */
  uint64_t checksum;          /* xor of all tasks' results */
};

/* The argument of one fan-out task. */
struct job {
  struct run *run; /* the run it belongs to */
  uint64_t seed;   /* xorshift state to start from; never 0 */
  uint64_t result; /* xorshift state after run->rounds rounds */
};

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Marsaglia's xorshift64: cheap, serial (no round can start before the
 * previous one ends) and impossible for the compiler to skip. */
static uint64_t xorshift(uint64_t x, uint64_t rounds) {
  for (uint64_t i = 0; i < rounds; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
  }
  return x;
}

/* Where calibrate() leaves its result, so that the timed call is not
 * optimised away. */
static volatile uint64_t calibrate_sink;

/* The number of rounds that take about SPIN_MS on this machine. */
static uint64_t calibrate(void) {
  uint64_t rounds = UINT64_C(1) << 16;
  for (;;) {
    double t0 = now_s();
    calibrate_sink = xorshift(88172645463325252u ^ rounds, rounds);
    double dt = now_s() - t0;
    if (dt >= 0.05 || rounds >= (UINT64_C(1) << 40))
      return (uint64_t)((double)rounds * (SPIN_MS / 1000.0) / dt) + 1;
    rounds *= 2;
  }
}

static void *spin(void *arg) {
  struct job *job = arg;
  job->result = xorshift(job->seed, job->run->rounds);
  /* The task never suspends, so it ran entirely on this worker. */
  int idx = weft_worker_index();
  if (idx < 0)
    return weft_task_fail(idx);
  atomic_fetch_add_explicit(&job->run->per_worker[idx], 1,
                            memory_order_relaxed);
  return NULL;
}

static void *fanout_main(void *arg) {
  struct run *run = arg;
  static struct job jobs[FANOUT_TASKS];
  weft_task_t *tasks[FANOUT_TASKS];

  int n = weft_worker_count();
  if (n < 0) {
    fprintf(stderr, "fanout: weft_worker_count: %s\n", weft_strerror(n));
    return weft_task_fail(n);
  }
  run->workers = n;
  run->per_worker = malloc((size_t)n * sizeof *run->per_worker);
  run->stats = calloc((size_t)n, sizeof *run->stats);
  if (run->per_worker == NULL || run->stats == NULL)
    return weft_task_fail(WEFT_ENOMEM);
  for (int w = 0; w < n; w++)
    atomic_init(&run->per_worker[w], 0);

  double t0 = now_s();
  int err = 0;
  size_t spawned = 0;
  for (; spawned < FANOUT_TASKS; spawned++) {
    jobs[spawned].run = run;
    jobs[spawned].seed = 0x9E3779B97F4A7C15u * (spawned + 1);
    jobs[spawned].result = 0;
    err = weft_spawn(spin, &jobs[spawned], &tasks[spawned]);
    if (err != 0) {
      fprintf(stderr, "fanout: weft_spawn: %s\n", weft_strerror(err));
      break;
    }
  }
  if (err == 0) {
    err = weft_gather(tasks, spawned, NULL);
    if (err != 0)
      fprintf(stderr, "fanout: weft_gather: %s\n", weft_strerror(err));
  }
  run->seconds = now_s() - t0;
  for (size_t i = 0; i < spawned; i++)
    weft_task_unref(tasks[i]);
  if (err != 0)
    return weft_task_fail(err);

  run->checksum = 0;
  for (size_t i = 0; i < FANOUT_TASKS; i++)
    run->checksum ^= jobs[i].result;

  for (int w = 0; w < n; w++) {
    err = weft_worker_stats((unsigned)w, &run->stats[w]);
    if (err != 0) {
      fprintf(stderr, "fanout: weft_worker_stats: %s\n", weft_strerror(err));
      return weft_task_fail(err);
    }
  }
  return NULL;
}

static int run_fanout(struct run *run) {
  weft_config_t cfg;
  weft_config_init(&cfg);
  cfg.workers = run->workers_asked;
  int err = weft_run(fanout_main, run, &cfg, NULL);
  if (err != 0)
    fprintf(stderr, "fanout: weft_run: %s\n", weft_strerror(err));
  return err;
}

static void print_run(const struct run *run) {
  printf("%4d worker%s %7.3f s   tasks per worker: [", run->workers,
         run->workers == 1 ? ": " : "s:", run->seconds);
  for (int w = 0; w < run->workers; w++)
    printf("%s%u", w == 0 ? "" : " ", atomic_load(&run->per_worker[w]));
  printf("]\n");
}

static void print_stats(const struct run *run) {
  printf("\nworker counters of the %d-worker run (weft_worker_stats):\n",
         run->workers);
  printf("%6s %9s %8s %7s %7s %7s %7s %7s %8s %7s %8s\n", "worker", "tasks_run",
         "spawned", "steals", "stolen", "lifo", "inject", "inbox", "io_polls",
         "parks", "wakeups");
  for (int w = 0; w < run->workers; w++) {
    const weft_worker_stats_t *s = &run->stats[w];
    printf(
        "%6d %9" PRIu64 " %8" PRIu64 " %7" PRIu64 " %7" PRIu64 " %7" PRIu64
        " %7" PRIu64 " %7" PRIu64 " %8" PRIu64 " %7" PRIu64 " %8" PRIu64 "\n",
        w, s->tasks_run, s->tasks_spawned, s->steals, s->stolen, s->lifo_runs,
        s->inject_pops, s->inbox_pops, s->io_polls, s->parks, s->wakeups);
  }
}

static void free_run(struct run *run) {
  free(run->per_worker);
  free(run->stats);
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);

  unsigned workers = 0;
  if (argc > 2) {
    fprintf(stderr, "usage: %s [workers]\n", argv[0]);
    return EXIT_FAILURE;
  }
  if (argc == 2) {
    char *end = NULL;
    long v = strtol(argv[1], &end, 10);
    if (end == argv[1] || *end != '\0' || v < 0 || v > MAX_WORKERS) {
      fprintf(stderr, "fanout: bad worker count '%s' (0 = all cores)\n",
              argv[1]);
      return EXIT_FAILURE;
    }
    workers = (unsigned)v;
  }

  uint64_t rounds = calibrate();
  printf("fan-out: %d tasks of ~%d ms of xorshift each (%" PRIu64
         " rounds), weft %s\n",
         FANOUT_TASKS, SPIN_MS, rounds, weft_version_string());

  struct run one, many;
  memset(&one, 0, sizeof one);
  memset(&many, 0, sizeof many);
  one.workers_asked = 1;
  one.rounds = rounds;
  many.workers_asked = workers;
  many.rounds = rounds;

  int status = EXIT_FAILURE;
  if (run_fanout(&one) != 0)
    goto out;
  print_run(&one);
  if (run_fanout(&many) != 0)
    goto out;
  print_run(&many);

  if (one.checksum != many.checksum) {
    fprintf(stderr,
            "fanout: checksums differ: %016" PRIx64 " != %016" PRIx64 "\n",
            one.checksum, many.checksum);
    goto out;
  }
  printf("speedup: %.2fx on %d workers (checksum %016" PRIx64 ")\n",
         one.seconds / many.seconds, many.workers, many.checksum);
  print_stats(&many);
  status = EXIT_SUCCESS;
out:
  free_run(&one);
  free_run(&many);
  return status;
}
