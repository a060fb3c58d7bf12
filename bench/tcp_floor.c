/*
 * tcp_floor: floors of a TCP echo (and HTTP hello) server in plain C, one
 * thread, no runtime, for bench/uring.sh, which loads them next to weft to
 * decide whether an io_uring path for weft's streams could pay off
 * (docs/design.md §7, "io_uring").
 *
 *   tcp_floor epoll|uring|uring-batch echo|http PORT
 *
 * Prints READY when listening on 127.0.0.1:PORT; SIGTERM ends it.
 *  - epoll: level-triggered epoll; per ready connection one read() and one
 *    write() (http: one write per request end in what was read). Two system
 *    calls per message plus the epoll_wait calls.
 *  - uring: the best case io_uring offers on this kernel: one multishot
 *    accept; per connection one multishot recv that picks its buffers from a
 *    provided buffer ring (an idle connection holds no buffer); each
 *    received buffer is copied out, returned to the ring at once, and sent
 *    back (or answered) with a send SQE that posts no completion unless it
 *    fails (MSG_WAITALL: the kernel finishes a short send itself); one
 *    io_uring_enter per loop turn submits the turn's sends and waits for one
 *    completion (SINGLE_ISSUER|DEFER_TASKRUN: completions are made in that
 *    call, not in interrupts).
 *  - uring-batch: the same, but a turn waits for BATCH_MIN completions or
 *    BATCH_WAIT_NS, whichever comes first: completions are coalesced, as a
 *    runtime would have to do to make the ring pay (design.md §7).
 *
 * Build: cc -O2 -o tcp_floor tcp_floor.c -luring (liburing-dev)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define NBUF 4096u          /* provided buffers (a power of two) */
#define BUF_SIZE 16384u     /* bytes per provided buffer (< 2^15) */
#define BGID 1              /* the buffer group */
#define ENTRIES 4096u       /* submission queue entries */
#define BATCH_MIN 8u        /* uring-batch: completions a turn waits for */
#define BATCH_WAIT_NS 50000 /* uring-batch: ... or this long */

enum { OP_ACCEPT = 1, OP_RECV, OP_SEND };

static const char RESP[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                           "Content-Length: 13\r\n\r\nHello, World!";

static struct io_uring ring;
static struct io_uring_buf_ring *br;
static char *bufs;
static int http;

/* user_data: op (8 bits) | fd (high 32 bits). */
static uint64_t ud(unsigned op, int fd) {
  return (uint64_t)op | (uint64_t)(unsigned)fd << 32;
}
static unsigned ud_op(uint64_t u) { return u & 0xff; }
static int ud_fd(uint64_t u) { return (int)(u >> 32); }

/* Per connection, the bytes being echoed: the received buffer is copied
 * here and goes straight back to the ring, so a send needs no completion
 * to return it (the sends skip their CQE on success, and MSG_WAITALL makes
 * the kernel finish a short send itself). One send per connection is in
 * flight at a time: the load generators are closed-loop (a connection
 * sends its next message after the echo of the previous one). */
static char **outbuf; /* indexed by fd */
static size_t noutbuf;

static struct io_uring_sqe *sqe_get(void) {
  struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
  if (!sqe) { /* full: submit what is queued and retry */
    io_uring_submit(&ring);
    sqe = io_uring_get_sqe(&ring);
  }
  if (!sqe) {
    fprintf(stderr, "uring_floor: no SQE\n");
    exit(1);
  }
  return sqe;
}

static void buf_recycle(unsigned bid) {
  io_uring_buf_ring_add(br, bufs + (size_t)bid * BUF_SIZE, BUF_SIZE, bid,
                        io_uring_buf_ring_mask(NBUF), 0);
  io_uring_buf_ring_advance(br, 1);
}

static void arm_recv(int fd) {
  struct io_uring_sqe *sqe = sqe_get();
  io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = BGID;
  io_uring_sqe_set_data64(sqe, ud(OP_RECV, fd));
}

static void arm_accept(int ls) {
  struct io_uring_sqe *sqe = sqe_get();
  io_uring_prep_multishot_accept(sqe, ls, NULL, NULL, 0);
  io_uring_sqe_set_data64(sqe, ud(OP_ACCEPT, ls));
}

static void send_bytes(int fd, const void *p, unsigned len) {
  struct io_uring_sqe *sqe = sqe_get();
  io_uring_prep_send(sqe, fd, p, len, MSG_NOSIGNAL | MSG_WAITALL);
  sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
  io_uring_sqe_set_data64(sqe, ud(OP_SEND, fd));
}

static char *outbuf_of(int fd) {
  if ((size_t)fd >= noutbuf) {
    size_t n = (size_t)fd * 2 + 64;
    outbuf = realloc(outbuf, n * sizeof(*outbuf));
    if (!outbuf) {
      perror("realloc");
      exit(1);
    }
    memset(outbuf + noutbuf, 0, (n - noutbuf) * sizeof(*outbuf));
    noutbuf = n;
  }
  if (!outbuf[fd] && !(outbuf[fd] = malloc(BUF_SIZE))) {
    perror("malloc");
    exit(1);
  }
  return outbuf[fd];
}

/* Request ends ("\r\n\r\n") in b[0..n): one response each (no parser: the
 * load generators send whole requests, unpipelined or pipelined). */
static unsigned request_ends(const char *b, size_t n) {
  unsigned reqs = 0;
  for (size_t k = 3; k < n; k++)
    if (b[k] == '\n' && b[k - 1] == '\r' && b[k - 2] == '\n' &&
        b[k - 3] == '\r')
      reqs++;
  return reqs;
}

static void on_recv(int fd, struct io_uring_cqe *cqe) {
  /* The multishot ended with the connection still usable: re-arm it. */
  if (!(cqe->flags & IORING_CQE_F_MORE) &&
      (cqe->res > 0 || cqe->res == -ENOBUFS))
    arm_recv(fd);
  if (cqe->res <= 0) {
    if (cqe->res != -ENOBUFS)
      close(fd);
    return;
  }
  unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
  unsigned n = (unsigned)cqe->res;
  const char *b = bufs + (size_t)bid * BUF_SIZE;
  if (!http) {
    char *out = outbuf_of(fd);
    memcpy(out, b, n);
    buf_recycle(bid);
    send_bytes(fd, out, n);
    return;
  }
  unsigned reqs = request_ends(b, n);
  buf_recycle(bid);
  for (unsigned q = 0; q < reqs; q++)
    send_bytes(fd, RESP, sizeof RESP - 1);
}

static int epoll_floor(int ls) {
  int ep = epoll_create1(0), one = 1;
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls}, evs[256];
  if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev) < 0) {
    perror("epoll");
    return 1;
  }
  static char buf[65536];
  printf("READY\n");
  fflush(stdout);
  for (;;) {
    int n = epoll_wait(ep, evs, 256, -1);
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd == ls) {
        int c;
        while ((c = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          struct epoll_event e = {.events = EPOLLIN, .data.fd = c};
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &e);
        }
        continue;
      }
      ssize_t r = read(fd, buf, sizeof buf);
      if (r <= 0) {
        if (r == 0 || errno != EAGAIN)
          close(fd);
        continue;
      }
      if (!http) {
        if (write(fd, buf, (size_t)r) < 0)
          close(fd);
        continue;
      }
      for (unsigned q = request_ends(buf, (size_t)r); q > 0; q--)
        if (write(fd, RESP, sizeof RESP - 1) < 0) {
          close(fd);
          break;
        }
    }
  }
}

int main(int argc, char **argv) {
  if (argc != 4 || (strcmp(argv[1], "epoll") && strcmp(argv[1], "uring") &&
                    strcmp(argv[1], "uring-batch"))) {
    fprintf(stderr,
            "usage: tcp_floor epoll|uring|uring-batch echo|http PORT\n");
    return 2;
  }
  http = !strcmp(argv[2], "http");
  int port = atoi(argv[3]);
  int ls = socket(AF_INET,
                  SOCK_STREAM | (argv[1][0] == 'e' ? SOCK_NONBLOCK : 0), 0),
      one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons(port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (bind(ls, (void *)&a, sizeof a) || listen(ls, 1024)) {
    perror("bind");
    return 1;
  }
  if (argv[1][0] == 'e')
    return epoll_floor(ls);
  unsigned batch = strcmp(argv[1], "uring-batch") ? 1 : BATCH_MIN;
  struct io_uring_params p;
  memset(&p, 0, sizeof p);
  p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  int rc = io_uring_queue_init_params(ENTRIES, &ring, &p);
  if (rc < 0) {
    fprintf(stderr, "io_uring_queue_init: %s\n", strerror(-rc));
    return 1;
  }
  br = mmap(NULL, NBUF * sizeof(struct io_uring_buf), PROT_READ | PROT_WRITE,
            MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  bufs = malloc((size_t)NBUF * BUF_SIZE);
  if (br == MAP_FAILED || !bufs) {
    perror("alloc");
    return 1;
  }
  io_uring_buf_ring_init(br);
  struct io_uring_buf_reg reg = {
      .ring_addr = (uintptr_t)br, .ring_entries = NBUF, .bgid = BGID};
  rc = io_uring_register_buf_ring(&ring, &reg, 0);
  if (rc < 0) {
    fprintf(stderr, "io_uring_register_buf_ring: %s\n", strerror(-rc));
    return 1;
  }
  for (unsigned i = 0; i < NBUF; i++)
    io_uring_buf_ring_add(br, bufs + (size_t)i * BUF_SIZE, BUF_SIZE, i,
                          io_uring_buf_ring_mask(NBUF), i);
  io_uring_buf_ring_advance(br, NBUF);
  arm_accept(ls);
  printf("READY\n");
  fflush(stdout);
  struct __kernel_timespec batch_ts = {.tv_sec = 0, .tv_nsec = BATCH_WAIT_NS};
  for (;;) {
    if (batch > 1) {
      struct io_uring_cqe *first;
      rc = io_uring_submit_and_wait_timeout(&ring, &first, batch, &batch_ts,
                                            NULL);
      if (rc == -ETIME)
        rc = 0;
    } else {
      rc = io_uring_submit_and_wait(&ring, 1);
    }
    if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY &&
        rc != -ETIME) {
      fprintf(stderr, "io_uring_submit_and_wait: %s\n", strerror(-rc));
      return 1;
    }
    struct io_uring_cqe *cqe;
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&ring, head, cqe) {
      uint64_t u = io_uring_cqe_get_data64(cqe);
      seen++;
      switch (ud_op(u)) {
      case OP_ACCEPT:
        if (cqe->res >= 0) {
          setsockopt(cqe->res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          arm_recv(cqe->res);
        }
        if (!(cqe->flags & IORING_CQE_F_MORE))
          arm_accept(ls);
        break;
      case OP_RECV:
        on_recv(ud_fd(u), cqe);
        break;
      case OP_SEND:
        break; /* failed (success skips the CQE): the recv side closes */
      }
    }
    io_uring_cq_advance(&ring, seen);
  }
}
