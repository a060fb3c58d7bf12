// udp_load: closed-loop UDP echo load generator (the UDP counterpart of
// ../shared/bench/echo_load.c). C connected sockets, each with one datagram
// of S bytes in flight: it sends, waits for the echo, records the round
// trip, sends the next. A datagram whose echo has not come back within
// 200 ms counts as lost and is sent again (the load never stalls). After W
// seconds of warm-up it measures for D seconds and prints
//   UDP clients=C size=S secs=D pkts=N pkts_per_s=X p50_us=.. p99_us=..
//       lost=L [server_cpu_us_per_pkt=U]
// where pkts counts echoed round trips and, with --pid PID, U is the
// server's CPU time (utime + stime from /proc/PID/stat) over the window
// divided by pkts.
//
// Usage: udp_load [--pid PID] HOST PORT C S D [W]
// Build: cc -O2 -o udp_load udp_load.c
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LOST_NS 200000000ull

typedef struct {
  int fd;
  uint32_t seq;     // sequence number of the datagram in flight
  uint64_t t_start; // ns when it was sent
} client_t;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t *lat;
static size_t nlat, caplat;
static void add_lat(uint64_t v) {
  if (nlat == caplat) {
    caplat = caplat ? caplat * 2 : (1u << 20);
    lat = realloc(lat, caplat * sizeof *lat);
    if (!lat) {
      perror("realloc");
      exit(2);
    }
  }
  lat[nlat++] = v;
}
static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static double cpu_s(long pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *p = strrchr(buf, ')'); // the command may hold spaces
  if (!p)
    return -1;
  unsigned long ut = 0, st = 0;
  // fields after ')': 3 state ... 14 utime 15 stime
  if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut,
             &st) != 2)
    return -1;
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static char *sbuf, *rbuf;
static size_t S;
static uint64_t pkts, lost;
static int measuring;

static void send_one(client_t *c) {
  c->seq++;
  memcpy(sbuf, &c->seq, sizeof c->seq);
  c->t_start = now_ns();
  if (send(c->fd, sbuf, S, 0) < 0 && errno != EAGAIN && errno != ECONNREFUSED) {
    perror("send");
    exit(1);
  }
}

int main(int argc, char **argv) {
  long pid = 0;
  if (argc > 2 && strcmp(argv[1], "--pid") == 0) {
    pid = atol(argv[2]);
    argv += 2;
    argc -= 2;
  }
  if (argc < 6) {
    fprintf(stderr, "usage: udp_load [--pid PID] HOST PORT C S D [W]\n");
    return 2;
  }
  const char *host = argv[1];
  int port = atoi(argv[2]), C = atoi(argv[3]);
  S = (size_t)atol(argv[4]);
  double D = atof(argv[5]), W = argc > 6 ? atof(argv[6]) : 1;
  if (C < 1 || S < sizeof(uint32_t) || S > 65507 || D <= 0) {
    fprintf(stderr, "udp_load: bad arguments\n");
    return 2;
  }
  sbuf = calloc(1, S);
  rbuf = malloc(65536);
  memset(sbuf, 'x', S);
  struct sockaddr_in to;
  memset(&to, 0, sizeof to);
  to.sin_family = AF_INET;
  to.sin_port = htons((unsigned short)port);
  if (inet_pton(AF_INET, host, &to.sin_addr) != 1) {
    fprintf(stderr, "udp_load: HOST must be an IPv4 literal\n");
    return 2;
  }
  int ep = epoll_create1(0);
  client_t *cs = calloc((size_t)C, sizeof *cs);
  for (int i = 0; i < C; i++) {
    cs[i].fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (cs[i].fd < 0 ||
        connect(cs[i].fd, (struct sockaddr *)&to, sizeof to) != 0) {
      perror("udp_load: socket/connect");
      return 1;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cs[i]};
    epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
  }
  uint64_t t0 = now_ns(), t_meas = t0 + (uint64_t)(W * 1e9),
           t_end = t_meas + (uint64_t)(D * 1e9), last_scan = t0;
  double c0 = 0;
  for (int i = 0; i < C; i++)
    send_one(&cs[i]);
  struct epoll_event evs[256];
  for (;;) {
    uint64_t now = now_ns();
    if (!measuring && now >= t_meas) {
      measuring = 1;
      pkts = lost = 0;
      nlat = 0;
      if (pid)
        c0 = cpu_s(pid);
    }
    if (now >= t_end)
      break;
    if (now - last_scan > LOST_NS / 4) { // resend what looks lost
      last_scan = now;
      for (int i = 0; i < C; i++)
        if (now - cs[i].t_start > LOST_NS) {
          if (measuring)
            lost++;
          send_one(&cs[i]);
        }
    }
    int n = epoll_wait(ep, evs, 256, 50);
    for (int k = 0; k < n; k++) {
      client_t *c = evs[k].data.ptr;
      for (;;) {
        ssize_t r = recv(c->fd, rbuf, 65536, 0);
        if (r < 0)
          break;
        uint32_t seq;
        if ((size_t)r != S)
          continue;
        memcpy(&seq, rbuf, sizeof seq);
        if (seq != c->seq)
          continue; // the echo of a datagram counted lost and resent
        if (measuring) {
          pkts++;
          add_lat(now_ns() - c->t_start);
        }
        send_one(c);
      }
    }
  }
  double c1 = pid ? cpu_s(pid) : 0;
  qsort(lat, nlat, sizeof *lat, cmp_u64);
  uint64_t p50 = nlat ? lat[nlat / 2] : 0,
           p99 = nlat ? lat[nlat * 99 / 100] : 0;
  printf("UDP clients=%d size=%zu secs=%.0f pkts=%llu pkts_per_s=%.0f "
         "p50_us=%.1f p99_us=%.1f lost=%llu",
         C, S, D, (unsigned long long)pkts, (double)pkts / D, (double)p50 / 1e3,
         (double)p99 / 1e3, (unsigned long long)lost);
  if (pid && c0 >= 0 && c1 >= 0 && pkts)
    printf(" server_cpu_us_per_pkt=%.2f", (c1 - c0) * 1e6 / (double)pkts);
  printf("\n");
  return 0;
}
