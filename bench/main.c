/*
 * weft-bench WORKLOAD WORKERS [PORT [CERT KEY]]: the benchmark program whose
 * workloads bench/README.md defines. Dispatches to one workload per
 * file and holds the helpers they share (bench.h).
 */
#define _POSIX_C_SOURCE 200809L

#include "bench.h"

#include <sys/resource.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

uint64_t bench_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

long bench_status_kb(const char *field) {
  FILE *f = fopen("/proc/self/status", "r");
  if (f == NULL)
    return -1;
  size_t len = strlen(field);
  char line[256];
  long kb = -1;
  while (fgets(line, sizeof line, f) != NULL) {
    if (strncmp(line, field, len) == 0 && line[len] == ':') {
      char *end;
      errno = 0;
      long v = strtol(line + len + 1, &end, 10);
      if (errno == 0 && end != line + len + 1)
        kb = v;
      break;
    }
  }
  fclose(f);
  return kb;
}

long bench_minflt(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0)
    return -1;
  return ru.ru_minflt;
}

void bench_result(const char *workload, unsigned workers, const char *fmt,
                  ...) {
  va_list ap;
  printf("RESULT %s weft %u ", workload, workers);
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  putchar('\n');
  fflush(stdout);
}

int bench_fail(const char *workload, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "weft-bench: %s: ", workload);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  return BENCH_EXIT_FAIL;
}

int bench_run(const char *workload, unsigned workers, weft_task_fn main_fn,
              void *arg) {
  weft_config_t cfg;
  weft_config_init(&cfg);
  cfg.workers = workers;
  int rc = weft_run(main_fn, arg, &cfg, NULL);
  if (rc != 0)
    return bench_fail(workload, "weft_run: %s (%s)", weft_strerror(rc),
                      weft_err_name(rc));
  return 0;
}

_Noreturn void bench_die(const char *workload, const char *what, int err) {
  fprintf(stderr, "weft-bench: %s: %s: %s (%s)\n", workload, what,
          weft_strerror(err), weft_err_name(err));
  /* Other workers are still running tasks: leave without running atexit
   * handlers under them. stderr is unbuffered, stdout holds nothing yet. */
  _Exit(BENCH_EXIT_FAIL);
}

int bench_latch_init(bench_latch_t *l, size_t target) {
  atomic_init(&l->count, 0);
  l->target = target;
  return weft_queue_new(0, &l->done);
}

void bench_latch_destroy(bench_latch_t *l) {
  weft_queue_free(l->done);
  l->done = NULL;
}

size_t bench_latch_arrive(bench_latch_t *l, const char *workload) {
  /* acq_rel: the last arriver sees every earlier arriver's writes, and the
   * queue hand-off passes them on to the waiter. */
  size_t n = atomic_fetch_add_explicit(&l->count, 1, memory_order_acq_rel) + 1;
  if (n == l->target) {
    int rc = weft_queue_try_put(l->done, l);
    if (rc != 0)
      bench_die(workload, "weft_queue_try_put (completion)", rc);
  }
  return n;
}

int bench_latch_wait(bench_latch_t *l) {
  void *item;
  return weft_queue_get(l->done, &item);
}

struct workload {
  const char *name;
  int (*run)(unsigned workers);
};

static const struct workload workloads[] = {
    {"spawn_many", bench_spawn_many},
    {"yield_many", bench_yield_many},
    {"ping_pong", bench_ping_pong},
    {"chained_spawn", bench_chained_spawn},
    {"timers", bench_timers},
    {"timeouts", bench_timeouts},
    {"fanout_cpu", bench_fanout_cpu},
    {"idle_memory", bench_idle_memory},
    {"mutex_contended", bench_mutex_contended},
    {"queue_mpmc", bench_queue_mpmc},
};

/* Workloads that take a PORT: the servers listen on 127.0.0.1:PORT until
 * SIGTERM/SIGINT; crawl crawls the site served there (examples/site). The
 * TLS servers (run_tls set, run NULL) also take CERT and KEY, PEM files. */
struct server_workload {
  const char *name;
  int (*run)(unsigned workers, int port);
  int (*run_tls)(unsigned workers, int port, const bench_tls_files_t *tls);
};

static const struct server_workload server_workloads[] = {
    {"echo_server", bench_echo_server, NULL},
    {"udp_echo_server", bench_udp_echo_server, NULL},
    {"http_server", bench_http_server, NULL},
    {"tls_echo_server", NULL, bench_tls_echo_server},
    {"https_server", NULL, bench_https_server},
    {"crawl", bench_crawl, NULL},
};

static int usage(const char *argv0) {
  fprintf(stderr, "usage: %s WORKLOAD WORKERS [PORT [CERT KEY]]\n", argv0);
  fprintf(stderr, "  in-process workloads:");
  for (size_t i = 0; i < sizeof workloads / sizeof workloads[0]; i++)
    fprintf(stderr, " %s", workloads[i].name);
  fprintf(stderr, "\n  server and client workloads (PORT required):");
  for (size_t i = 0; i < sizeof server_workloads / sizeof server_workloads[0];
       i++)
    fprintf(stderr, " %s%s", server_workloads[i].name,
            server_workloads[i].run_tls ? " (CERT KEY required)" : "");
  fprintf(stderr, "\n  WORKERS: number of worker threads, 1..1024\n");
  fprintf(stderr, "  CERT, KEY: the TLS servers' certificate chain and "
                  "private key, PEM files\n");
  return BENCH_EXIT_USAGE;
}

int main(int argc, char **argv) {
  const char *argv0 = argc > 0 ? argv[0] : "weft-bench";
  if (argc < 3 || argc > 6)
    return usage(argv0);

  char *end;
  errno = 0;
  unsigned long workers = strtoul(argv[2], &end, 10);
  if (errno != 0 || end == argv[2] || *end != '\0' || argv[2][0] == '-' ||
      workers < 1 || workers > 1024) {
    fprintf(stderr, "%s: bad WORKERS '%s'\n", argv0, argv[2]);
    return usage(argv0);
  }

  for (size_t i = 0; i < sizeof server_workloads / sizeof server_workloads[0];
       i++) {
    if (strcmp(argv[1], server_workloads[i].name) == 0) {
      const struct server_workload *w = &server_workloads[i];
      if (argc != (w->run_tls ? 6 : 4)) {
        fprintf(stderr, "%s: %s takes WORKERS PORT%s\n", argv0, argv[1],
                w->run_tls ? " CERT KEY" : "");
        return usage(argv0);
      }
      errno = 0;
      long port = strtol(argv[3], &end, 10);
      if (errno != 0 || end == argv[3] || *end != '\0')
        port = -1;
      if (port < 0 || port > 65535) {
        fprintf(stderr, "%s: %s needs a PORT (0..65535)\n", argv0, argv[1]);
        return usage(argv0);
      }
      if (w->run_tls) {
        bench_tls_files_t files = {argv[4], argv[5]};
        return w->run_tls((unsigned)workers, (int)port, &files);
      }
      return w->run((unsigned)workers, (int)port);
    }
  }
  if (argc > 4)
    return usage(argv0); /* CERT KEY only go with the TLS servers */
  for (size_t i = 0; i < sizeof workloads / sizeof workloads[0]; i++) {
    if (strcmp(argv[1], workloads[i].name) == 0) {
      /* PORT only matters to the server workloads. */
      return workloads[i].run((unsigned)workers);
    }
  }
  fprintf(stderr, "%s: unknown workload '%s'\n", argv0, argv[1]);
  return usage(argv0);
}
