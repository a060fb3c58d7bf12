/*
 * task_dump: what weft_dump_tasks() shows (docs/observability.md quotes its
 * output). A producer fills a bounded queue and blocks, a consumer waits
 * for a lock held by main, a third task sleeps; main dumps every task to
 * stdout, then lets them go. Build it linked against the shared library
 * with -rdynamic (the examples' CMake does) so that even without libunwind
 * its own functions get names.
 *
 * With an argument (a signal number, e.g. 3 for SIGQUIT) it instead arms
 * weft_dump_on_signal() and raises the signal: the dump then comes from the
 * dumper thread.
 */
#include <weft.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct shop {
  weft_queue_t *q;
  weft_lock_t *lock;
} shop_t;

void *producer(void *arg);
void *consumer(void *arg);
void *napper(void *arg);

__attribute__((noinline)) void *producer(void *arg) {
  shop_t *s = arg;
  for (intptr_t i = 1;; i++)
    if (weft_queue_put(s->q, (void *)i) != 0)
      return NULL; /* cancelled */
}

__attribute__((noinline)) void *consumer(void *arg) {
  shop_t *s = arg;
  if (weft_lock_acquire(s->lock) == 0)
    weft_lock_release(s->lock);
  return NULL;
}

__attribute__((noinline)) void *napper(void *arg) {
  (void)arg;
  weft_sleep(60000);
  return NULL;
}

static int signo;

static void *main_task(void *arg) {
  shop_t s;
  weft_task_t *t[3];
  weft_spawn_opts_t o;
  (void)arg;
  weft_queue_new(2, &s.q);
  weft_lock_new(&s.lock);
  weft_lock_acquire(s.lock);
  weft_spawn_opts_init(&o);
  o.name = "producer";
  weft_spawn_ex(producer, &s, &o, &t[0]);
  o.name = "consumer";
  weft_spawn_ex(consumer, &s, &o, &t[1]);
  weft_spawn(napper, NULL, &t[2]);
  /* Let them reach their waits (an example: a test polls the snapshot). */
  weft_sleep(100);
  if (signo) {
    raise(signo);
    weft_sleep(200); /* the dumper thread writes it meanwhile */
  } else {
    weft_dump_tasks(stdout);
  }
  weft_lock_release(s.lock);
  for (int i = 0; i < 3; i++) {
    weft_task_cancel(t[i]);
    weft_task_await(t[i], NULL);
    weft_task_unref(t[i]);
  }
  weft_queue_free(s.q);
  weft_lock_free(s.lock);
  return NULL;
}

int main(int argc, char **argv) {
  weft_config_t cfg;
  weft_config_init(&cfg);
  cfg.workers = 2;
  if (argc > 1) {
    signo = atoi(argv[1]);
    int rc = weft_dump_on_signal(signo, STDOUT_FILENO);
    if (rc) {
      fprintf(stderr, "weft_dump_on_signal: %s\n", weft_strerror(rc));
      return 1;
    }
  }
  int rc = weft_run(main_task, NULL, &cfg, NULL);
  weft_dump_on_signal(0, -1);
  return rc ? 1 : 0;
}
