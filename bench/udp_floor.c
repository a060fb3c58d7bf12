// udp_floor: the floor of a UDP echo server, in plain C: one thread, one
// non-blocking socket on 127.0.0.1:PORT, epoll, and for every datagram one
// recvfrom() and one sendto() (no batching, no copies beyond the kernel's).
// bench/udp.sh loads it next to weft-bench udp_echo_server and Go's.
//
//   udp_floor PORT      prints READY once bound; exits 0 on SIGTERM/SIGINT
//
// Build: cc -O2 -o udp_floor udp_floor.c
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: udp_floor PORT\n");
    return 2;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal; /* no SA_RESTART: epoll_wait returns EINTR */
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)atoi(argv[1]));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    perror("udp_floor: bind");
    return 1;
  }
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
  epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  printf("READY\n");
  fflush(stdout);
  static char buf[65536];
  unsigned long long echoed = 0;
  while (!stop) {
    struct epoll_event out;
    int n = epoll_wait(ep, &out, 1, -1);
    if (n < 0 && errno != EINTR) {
      perror("udp_floor: epoll_wait");
      return 1;
    }
    for (;;) {
      struct sockaddr_storage from;
      socklen_t flen = sizeof from;
      ssize_t r =
          recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &flen);
      if (r < 0)
        break; /* EAGAIN: wait again */
      if (sendto(fd, buf, (size_t)r, 0, (struct sockaddr *)&from, flen) == r)
        echoed++;
    }
  }
  fprintf(stderr, "udp_floor: echoed %llu\n", echoed);
  close(ep);
  close(fd);
  return 0;
}
