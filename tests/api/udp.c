/*
 * api_udp: weft/udp.h. Every error path; datagrams with their senders,
 * empty ones, truncation reported both ways (flag with info, WEFT_EMSGSIZE
 * leaving the datagram queued without); IPv6 and IPV6_V6ONLY; connected
 * endpoints (peer only, ICMP refusal reported by the next receive);
 * broadcast permission and multicast on loopback (skipped with a message
 * where the kernel refuses); receivers cancelled while datagrams race in,
 * nothing lost or duplicated; the queue limit pausing reading without loss;
 * the per-worker server (recvmmsg, many clients, close and free); an
 * endpoint used from pinned tasks on other workers and from tasks that get
 * stolen; another runtime refused; shutdown with everything left open.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

/* An endpoint bound to host:0 (NULL: skipped with *skip when the kernel
 * refuses the address family). */
static weft_udp_t *open_on(const char *host, int *skip) {
  weft_udp_opts_t o;
  weft_udp_t *u = NULL;
  weft_udp_opts_init(&o);
  o.local_host = host;
  int rc = weft_udp_open(&o, &u);
  if (skip && (rc == WEFT_EADDRNOTAVAIL || rc == WEFT_EAFNOSUPPORT)) {
    *skip = 1;
    return NULL;
  }
  CHECK_OK(rc);
  return u;
}

static struct sockaddr_storage name_of(weft_udp_t *u) {
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  CHECK_OK(weft_udp_sockname(u, &ss, NULL));
  return ss;
}

static int port_of_addr(const struct sockaddr_storage *ss) {
  return ntohs(ss->ss_family == AF_INET6
                   ? ((const struct sockaddr_in6 *)ss)->sin6_port
                   : ((const struct sockaddr_in *)ss)->sin_port);
}

/* ---- errors ------------------------------------------------------------- */

static void *errors_main(void *arg) {
  (void)arg;
  weft_udp_opts_t o;
  weft_udp_t *u = (weft_udp_t *)&o, *v;
  char buf[16];
  weft_udp_info_t info;

  /* Bad options. */
  CHECK_RC(weft_udp_open(NULL, &u), WEFT_EINVAL);
  CHECK(u == NULL); /* *out cleared on failure */
  weft_udp_opts_init(&o);
  CHECK_RC(weft_udp_open(&o, NULL), WEFT_EINVAL);
  o.local_port = 65536;
  CHECK_RC(weft_udp_open(&o, &u), WEFT_EINVAL);
  o.local_port = -1;
  CHECK_RC(weft_udp_open(&o, &u), WEFT_EINVAL);
  weft_udp_opts_init(&o);
  o.remote_host = "127.0.0.1";
  o.remote_port = 70000;
  CHECK_RC(weft_udp_open(&o, &u), WEFT_EINVAL);
  weft_udp_opts_init(&o);
  o.family = AF_UNIX;
  CHECK_RC(weft_udp_open(&o, &u), WEFT_EINVAL);
  weft_udp_opts_init(&o);
  o.ttl = 256;
  CHECK_RC(weft_udp_open(&o, &u), WEFT_EINVAL);
  weft_udp_opts_init(&o);
  o.multicast_ttl = -1;
  CHECK_RC(weft_udp_open(&o, &u), WEFT_EINVAL);
  weft_udp_opts_init(&o);
  o.recv_batch = WEFT_UDP_BATCH_MAX + 1;
  CHECK_RC(weft_udp_open(&o, &u), WEFT_EINVAL);
  weft_udp_opts_init(&o);
  o.high_water = 100;
  o.low_water = 101;
  CHECK_RC(weft_udp_open(&o, &u), WEFT_EINVAL);
  weft_udp_opts_init(&o);
  o.low_water = WEFT_UDP_HIGH_WATER_DEFAULT + 1;
  CHECK_RC(weft_udp_open(&o, &u), WEFT_EINVAL);

  /* Families that do not match. */
  weft_udp_opts_init(&o);
  o.local_host = "127.0.0.1";
  o.family = AF_INET6;
  CHECK_RC(weft_udp_open(&o, &u), WEFT_EAFNOSUPPORT);
  weft_udp_opts_init(&o);
  o.local_host = "127.0.0.1";
  o.remote_host = "::1";
  o.remote_port = 9;
  CHECK_RC(weft_udp_open(&o, &u), WEFT_EAFNOSUPPORT);
  /* Not an address of this host. */
  weft_udp_opts_init(&o);
  o.local_host = "192.0.2.1";
  CHECK_RC(weft_udp_open(&o, &u), WEFT_EADDRNOTAVAIL);

  /* A port in use, then shared with SO_REUSEADDR on both. */
  u = open_on("127.0.0.1", NULL);
  if (!u)
    return NULL;
  weft_udp_opts_init(&o);
  o.local_host = "127.0.0.1";
  o.local_port = weft_udp_port(u);
  CHECK_RC(weft_udp_open(&o, &v), WEFT_EADDRINUSE);
  /* Also for a socket asking for SO_REUSEADDR: the first did not (libuv's
   * uv_udp_open sets it; weft takes it back). */
  o.reuse_address = 1;
  CHECK_RC(weft_udp_open(&o, &v), WEFT_EADDRINUSE);
  CHECK_OK(weft_udp_free(u));
  o.local_port = 0;
  o.reuse_address = 1;
  CHECK_OK(weft_udp_open(&o, &u));
  o.local_port = weft_udp_port(u);
  CHECK_OK(weft_udp_open(&o, &v));
  CHECK_OK(weft_udp_free(v));

  /* Calls with bad arguments. */
  struct sockaddr_storage to = name_of(u);
  struct sockaddr_storage unix_addr;
  memset(&unix_addr, 0, sizeof unix_addr);
  unix_addr.ss_family = AF_UNIX;
  CHECK_RC(weft_udp_recv(NULL, buf, sizeof buf, NULL), WEFT_EINVAL);
  CHECK_RC(weft_udp_recv(u, NULL, 1, NULL), WEFT_EINVAL);
  CHECK_RC(weft_udp_send(NULL, "x", 1, (struct sockaddr *)&to), WEFT_EINVAL);
  CHECK_RC(weft_udp_send(u, NULL, 1, (struct sockaddr *)&to), WEFT_EINVAL);
  CHECK_RC(weft_udp_send(u, "x", 1, (struct sockaddr *)&unix_addr),
           WEFT_EAFNOSUPPORT);
  CHECK_RC(weft_udp_send(u, "x", 1, NULL), WEFT_ENOTCONN);
  static char big[70000];
  CHECK_RC(weft_udp_send(u, big, sizeof big, (struct sockaddr *)&to),
           WEFT_EMSGSIZE);
  CHECK_RC(weft_udp_drain(NULL), WEFT_EINVAL);
  CHECK_OK(weft_udp_drain(u)); /* nothing queued */
  CHECK_RC(weft_udp_join_group(NULL, "239.1.2.3", NULL), WEFT_EINVAL);
  CHECK_RC(weft_udp_join_group(u, NULL, NULL), WEFT_EINVAL);
  CHECK_RC(weft_udp_join_group(u, "not an address", NULL), WEFT_EINVAL);
  CHECK_RC(weft_udp_leave_group(u, "239.1.2.3", NULL), WEFT_EADDRNOTAVAIL);
  CHECK_RC(weft_udp_set_broadcast(NULL, 1), WEFT_EINVAL);
  CHECK_RC(weft_udp_set_broadcast(u, 2), WEFT_EINVAL);
  CHECK_RC(weft_udp_set_ttl(u, 0), WEFT_EINVAL);
  CHECK_RC(weft_udp_set_ttl(u, 256), WEFT_EINVAL);
  CHECK_OK(weft_udp_set_ttl(u, 64));
  CHECK_RC(weft_udp_set_multicast_ttl(u, 256), WEFT_EINVAL);
  CHECK_OK(weft_udp_set_multicast_ttl(u, 0));
  CHECK_RC(weft_udp_set_multicast_loop(u, -1), WEFT_EINVAL);
  CHECK_OK(weft_udp_set_multicast_loop(u, 0));
  CHECK_RC(weft_udp_set_multicast_interface(NULL, NULL), WEFT_EINVAL);
  CHECK_RC(weft_udp_set_multicast_interface(u, "not an address"), WEFT_EINVAL);
  CHECK_OK(weft_udp_set_multicast_interface(u, "127.0.0.1"));
  CHECK_RC(weft_udp_sockname(NULL, &to, NULL), WEFT_EINVAL);
  CHECK_RC(weft_udp_sockname(u, NULL, NULL), WEFT_EINVAL);
  CHECK_RC(weft_udp_peername(u, &to, NULL), WEFT_ENOTCONN);
  CHECK_RC(weft_udp_peername(NULL, &to, NULL), WEFT_EINVAL);
  CHECK_RC(weft_udp_port(NULL), WEFT_EINVAL);
  CHECK_RC(weft_udp_fileno(NULL), WEFT_EINVAL);
  CHECK(weft_udp_fileno(u) >= 0);
  CHECK_RC(weft_udp_using_recvmmsg(NULL), WEFT_EINVAL);
  CHECK_RC(weft_udp_using_recvmmsg(u), 0); /* recv_batch 1 */
  CHECK_RC(weft_udp_is_closing(NULL), WEFT_EINVAL);
  CHECK_RC(weft_udp_is_closing(u), 0);
  CHECK_RC(weft_udp_close(NULL), WEFT_EINVAL);

  /* After close: EBADF, close again is fine. */
  CHECK_OK(weft_udp_close(u));
  CHECK_RC(weft_udp_is_closing(u), 1);
  CHECK_OK(weft_udp_close(u));
  CHECK_RC(weft_udp_recv(u, buf, sizeof buf, &info), WEFT_EBADF);
  CHECK_RC(weft_udp_send(u, "x", 1, (struct sockaddr *)&to), WEFT_EBADF);
  CHECK_RC(weft_udp_join_group(u, "239.1.2.3", NULL), WEFT_EBADF);
  CHECK_RC(weft_udp_set_ttl(u, 3), WEFT_EBADF);
  CHECK_RC(weft_udp_set_broadcast(u, 1), WEFT_EBADF);
  CHECK_RC(weft_udp_set_multicast_interface(u, NULL), WEFT_EBADF);
  CHECK_RC(weft_udp_fileno(u), WEFT_EBADF);
  CHECK_OK(weft_udp_drain(u));
  CHECK_OK(weft_udp_free(u));
  CHECK_OK(weft_udp_free(NULL));

  /* Servers. */
  weft_udp_server_t *srv = NULL;
  weft_udp_server_opts_t so;
  weft_udp_server_opts_init(&so);
  CHECK_RC(weft_udp_server_start(NULL, NULL, &so, &srv), WEFT_EINVAL);
  CHECK_RC(weft_udp_server_start((weft_udp_handler_fn)1, NULL, &so, NULL),
           WEFT_EINVAL);
  so.udp.remote_host = "127.0.0.1";
  CHECK_RC(weft_udp_server_start((weft_udp_handler_fn)1, NULL, &so, &srv),
           WEFT_EINVAL);
  weft_udp_server_opts_init(&so);
  so.workers = (unsigned)weft_worker_count() + 1;
  CHECK_RC(weft_udp_server_start((weft_udp_handler_fn)1, NULL, &so, &srv),
           WEFT_EINVAL);
  weft_udp_server_opts_init(&so);
  so.udp.local_host = "192.0.2.1"; /* bind fails before anything runs */
  CHECK_RC(weft_udp_server_start((weft_udp_handler_fn)1, NULL, &so, &srv),
           WEFT_EADDRNOTAVAIL);
  CHECK(srv == NULL);
  CHECK_RC(weft_udp_server_port(NULL), WEFT_EINVAL);
  CHECK_RC(weft_udp_server_endpoints(NULL), WEFT_EINVAL);
  CHECK(weft_udp_server_endpoint(NULL, 0) == NULL);
  CHECK_RC(weft_udp_server_close(NULL), WEFT_EINVAL);
  CHECK_OK(weft_udp_server_free(NULL));
  return NULL;
}

static void test_errors(void **state) {
  (void)state;
  weft_udp_opts_t o;
  weft_udp_t *u = NULL;
  char buf[4];
  weft_udp_opts_init(&o);
  weft_udp_opts_init(NULL);
  weft_udp_server_opts_init(NULL);
  /* Outside a task. */
  assert_int_equal(weft_udp_open(&o, &u), WEFT_ENOTTASK);
  assert_int_equal(weft_udp_recv((weft_udp_t *)&o, buf, sizeof buf, NULL),
                   WEFT_ENOTTASK);
  assert_int_equal(weft_udp_send((weft_udp_t *)&o, buf, 1, NULL),
                   WEFT_ENOTTASK);
  assert_int_equal(weft_udp_drain((weft_udp_t *)&o), WEFT_ENOTTASK);
  assert_int_equal(weft_udp_close((weft_udp_t *)&o), WEFT_ENOTTASK);
  assert_int_equal(weft_udp_server_start((weft_udp_handler_fn)1, NULL, NULL,
                                         (weft_udp_server_t **)&u),
                   WEFT_ENOTTASK);
  run_in_weft(errors_main, NULL, 2);
}

/* ---- datagrams, senders, empty ones, truncation ------------------------- */

static void *basic_main(void *arg) {
  (void)arg;
  weft_udp_t *a = open_on("127.0.0.1", NULL), *b = open_on("127.0.0.1", NULL);
  if (!a || !b)
    return NULL;
  struct sockaddr_storage to = name_of(b), from = name_of(a);
  char buf[256];
  weft_udp_info_t info;

  CHECK_OK(weft_udp_send(a, "hello", 5, (struct sockaddr *)&to));
  CHECK_OK(weft_udp_send(a, "", 0, (struct sockaddr *)&to));
  CHECK_OK(weft_udp_send(a, "world!", 6, (struct sockaddr *)&to));
  memset(&info, 0xff, sizeof info);
  CHECK_RC(weft_udp_recv(b, buf, sizeof buf, &info), 5);
  CHECK(memcmp(buf, "hello", 5) == 0);
  CHECK_EQ(info.size, 5);
  CHECK_EQ(info.truncated, 0);
  CHECK_EQ(info.addrlen, sizeof(struct sockaddr_in));
  CHECK(memcmp(&info.addr, &from, sizeof(struct sockaddr_in)) == 0);
  CHECK_RC(weft_udp_recv(b, buf, sizeof buf, &info), 0); /* empty datagram */
  CHECK_EQ(info.size, 0);
  CHECK_RC(weft_udp_recv(b, NULL, 0, NULL), WEFT_EMSGSIZE); /* 6 > 0 */
  CHECK_RC(weft_udp_recv(b, buf, 6, NULL), 6);
  CHECK(memcmp(buf, "world!", 6) == 0);

  /* Truncation: without info refused and kept, with info flagged. */
  static char big[60000];
  for (size_t i = 0; i < sizeof big; i++)
    big[i] = (char)(i * 7);
  CHECK_OK(weft_udp_send(a, big, sizeof big, (struct sockaddr *)&to));
  CHECK_RC(weft_udp_recv(b, buf, sizeof buf, NULL), WEFT_EMSGSIZE);
  CHECK_RC(weft_udp_recv(b, buf, sizeof buf, NULL), WEFT_EMSGSIZE);
  CHECK_RC(weft_udp_recv(b, buf, 100, &info), 100);
  CHECK_EQ(info.size, sizeof big);
  CHECK_EQ(info.truncated, 1);
  CHECK(memcmp(buf, big, 100) == 0);
  /* Whole when it fits. */
  static char back[65536];
  CHECK_OK(weft_udp_send(a, big, sizeof big, (struct sockaddr *)&to));
  CHECK_RC(weft_udp_recv(b, back, sizeof back, &info), (int)sizeof big);
  CHECK_EQ(info.truncated, 0);
  CHECK(memcmp(back, big, sizeof big) == 0);

  /* The reply goes back to the sender. */
  CHECK_OK(weft_udp_send(b, "pong", 4, (struct sockaddr *)&info.addr));
  CHECK_RC(weft_udp_recv(a, buf, sizeof buf, &info), 4);
  CHECK(memcmp(&info.addr, &to, sizeof(struct sockaddr_in)) == 0);

  /* A name goes through the resolver; the family picks its address. */
  weft_udp_opts_t o;
  weft_udp_opts_init(&o);
  o.local_host = "localhost";
  o.family = AF_INET;
  weft_udp_t *named;
  CHECK_OK(weft_udp_open(&o, &named));
  if (named) {
    struct sockaddr_storage ln = name_of(named);
    CHECK_EQ(ln.ss_family, AF_INET);
    CHECK_EQ(((struct sockaddr_in *)&ln)->sin_addr.s_addr,
             htonl(INADDR_LOOPBACK));
    CHECK_OK(weft_udp_free(named));
  }
  CHECK_OK(weft_udp_free(a));
  CHECK_OK(weft_udp_free(b));
  return NULL;
}

typedef struct small_rx {
  weft_udp_t *u;
  atomic_int started;
  int rc1, rc2;
  char buf[64];
} small_rx_t;

static void *small_receiver(void *arg) {
  small_rx_t *s = arg;
  atomic_store(&s->started, 1);
  s->rc1 = weft_udp_recv(s->u, s->buf, 2, NULL);
  s->rc2 = weft_udp_recv(s->u, s->buf, sizeof s->buf, NULL);
  return NULL;
}

static void *waiting_small_main(void *arg) {
  (void)arg;
  weft_udp_t *a = open_on("127.0.0.1", NULL), *b = open_on("127.0.0.1", NULL);
  if (!a || !b)
    return NULL;
  small_rx_t s = {.u = b};
  atomic_init(&s.started, 0);
  weft_task_t *t;
  CHECK_OK(weft_spawn(small_receiver, &s, &t));
  if (HARNESS_WAIT_PARKED(s.started)) {
    struct sockaddr_storage to = name_of(b);
    CHECK_OK(weft_udp_send(a, "abcdef", 6, (struct sockaddr *)&to));
  }
  CHECK_OK(weft_task_await(t, NULL));
  weft_task_unref(t);
  CHECK_RC(s.rc1, WEFT_EMSGSIZE);
  CHECK_RC(s.rc2, 6);
  CHECK(memcmp(s.buf, "abcdef", 6) == 0);
  CHECK_OK(weft_udp_free(a));
  CHECK_OK(weft_udp_free(b));
  return NULL;
}

static void test_datagrams(void **state) {
  (void)state;
  run_in_weft(basic_main, NULL, 1);
  run_in_weft(basic_main, NULL, 2);
  run_in_weft(waiting_small_main, NULL, 1);
}

/* ---- IPv6 and IPV6_V6ONLY ----------------------------------------------- */

static void *ipv6_main(void *arg) {
  (void)arg;
  int skip = 0;
  weft_udp_t *a = open_on("::1", &skip);
  if (skip) {
    print_message("api_udp: IPv6 skipped: ::1 is not available here\n");
    return NULL;
  }
  weft_udp_t *b = open_on("::1", NULL);
  if (!a || !b)
    return NULL;
  struct sockaddr_storage to = name_of(b), from = name_of(a);
  CHECK_EQ(to.ss_family, AF_INET6);
  char buf[32];
  weft_udp_info_t info;
  CHECK_OK(weft_udp_send(a, "six", 3, (struct sockaddr *)&to));
  CHECK_RC(weft_udp_recv(b, buf, sizeof buf, &info), 3);
  CHECK_EQ(info.addrlen, sizeof(struct sockaddr_in6));
  CHECK(memcmp(&((struct sockaddr_in6 *)&info.addr)->sin6_addr,
               &((struct sockaddr_in6 *)&from)->sin6_addr, 16) == 0);
  CHECK_EQ(port_of_addr(&info.addr), port_of_addr(&from));
  CHECK_OK(weft_udp_set_ttl(a, 9)); /* IPV6_UNICAST_HOPS */
  CHECK_OK(weft_udp_set_multicast_ttl(a, 2));

  /* Dual stack: an IPv4 sender reaches a :: socket as ::ffff:127.0.0.1. */
  weft_udp_opts_t o;
  weft_udp_opts_init(&o);
  o.family = AF_INET6; /* local_host NULL: "::" */
  weft_udp_t *dual;
  CHECK_OK(weft_udp_open(&o, &dual));
  weft_udp_t *v4 = open_on("127.0.0.1", NULL);
  struct sockaddr_in lo;
  memset(&lo, 0, sizeof lo);
  lo.sin_family = AF_INET;
  lo.sin_port = htons((uint16_t)weft_udp_port(dual));
  lo.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK_OK(weft_udp_send(v4, "mapped", 6, (struct sockaddr *)&lo));
  CHECK_RC(weft_udp_recv(dual, buf, sizeof buf, &info), 6);
  CHECK_EQ(info.addr.ss_family, AF_INET6);
  CHECK(IN6_IS_ADDR_V4MAPPED(&((struct sockaddr_in6 *)&info.addr)->sin6_addr));
  /* ... so the port is taken for IPv4 too. */
  weft_udp_opts_init(&o);
  o.local_port = weft_udp_port(dual);
  weft_udp_t *x;
  CHECK_RC(weft_udp_open(&o, &x), WEFT_EADDRINUSE);

  /* IPV6_V6ONLY: the same port stays free for IPv4. */
  weft_udp_opts_init(&o);
  o.family = AF_INET6;
  o.ipv6_only = 1;
  weft_udp_t *only6;
  CHECK_OK(weft_udp_open(&o, &only6));
  weft_udp_opts_init(&o);
  o.local_port = weft_udp_port(only6);
  CHECK_OK(weft_udp_open(&o, &x));
  CHECK_OK(weft_udp_free(x));

  CHECK_OK(weft_udp_free(only6));
  CHECK_OK(weft_udp_free(v4));
  CHECK_OK(weft_udp_free(dual));
  CHECK_OK(weft_udp_free(a));
  CHECK_OK(weft_udp_free(b));
  return NULL;
}

static void test_ipv6(void **state) {
  (void)state;
  run_in_weft(ipv6_main, NULL, 2);
}

/* ---- connected endpoints ------------------------------------------------ */

static void *connected_main(void *arg) {
  (void)arg;
  weft_udp_t *srv = open_on("127.0.0.1", NULL);
  weft_udp_t *other = open_on("127.0.0.1", NULL);
  if (!srv || !other)
    return NULL;
  weft_udp_opts_t o;
  weft_udp_opts_init(&o);
  o.remote_host = "127.0.0.1";
  o.remote_port = weft_udp_port(srv);
  weft_udp_t *c;
  CHECK_OK(weft_udp_open(&o, &c));
  struct sockaddr_storage peer, sa = name_of(srv), cn = name_of(c);
  socklen_t len = 0;
  CHECK_OK(weft_udp_peername(c, &peer, &len));
  CHECK_EQ(len, sizeof(struct sockaddr_in));
  CHECK(memcmp(&peer, &sa, len) == 0);
  CHECK(weft_udp_port(c) > 0); /* bound by the connect */

  char buf[32];
  weft_udp_info_t info;
  CHECK_OK(weft_udp_send(c, "to-peer", 7, NULL));
  CHECK_OK(weft_udp_send(c, "same", 4, (struct sockaddr *)&sa)); /* = peer */
  struct sockaddr_storage on = name_of(other);
  CHECK_RC(weft_udp_send(c, "x", 1, (struct sockaddr *)&on), WEFT_EISCONN);
  CHECK_RC(weft_udp_recv(srv, buf, sizeof buf, &info), 7);
  CHECK_RC(weft_udp_recv(srv, buf, sizeof buf, &info), 4);

  /* It receives from its peer only: another sender's datagram is filtered
   * by the kernel, the peer's arrives. */
  CHECK_OK(weft_udp_send(other, "stranger", 8, (struct sockaddr *)&cn));
  CHECK_OK(weft_udp_send(srv, "peer", 4, (struct sockaddr *)&cn));
  CHECK_RC(weft_udp_recv(c, buf, sizeof buf, &info), 4);
  CHECK(memcmp(buf, "peer", 4) == 0);

  /* The peer goes away: the ICMP port-unreachable comes back as
   * WEFT_ECONNREFUSED on the next receive (once). */
  CHECK_OK(weft_udp_free(srv));
  CHECK_OK(weft_udp_send(c, "anyone?", 7, NULL));
  CHECK_RC(weft_udp_recv(c, buf, sizeof buf, &info), WEFT_ECONNREFUSED);

  CHECK_OK(weft_udp_free(c));
  CHECK_OK(weft_udp_free(other));
  return NULL;
}

static void test_connected(void **state) {
  (void)state;
  run_in_weft(connected_main, NULL, 2);
}

/* ---- broadcast and multicast -------------------------------------------- */

static void *broadcast_main(void *arg) {
  (void)arg;
  weft_udp_t *a = open_on("0.0.0.0", NULL);
  if (!a)
    return NULL;
  struct sockaddr_in bc;
  memset(&bc, 0, sizeof bc);
  bc.sin_family = AF_INET;
  bc.sin_port = htons(9);
  bc.sin_addr.s_addr = htonl(INADDR_BROADCAST);
  /* Without SO_BROADCAST the kernel refuses a broadcast destination. */
  CHECK_RC(weft_udp_send(a, "bc", 2, (struct sockaddr *)&bc), WEFT_EACCES);
  CHECK_OK(weft_udp_set_broadcast(a, 1));
  int rc = weft_udp_send(a, "bc", 2, (struct sockaddr *)&bc);
  if (rc == WEFT_ENETUNREACH)
    print_message("api_udp: broadcast send skipped: no route for "
                  "255.255.255.255 here\n");
  else
    CHECK_OK(rc);
  CHECK_OK(weft_udp_set_broadcast(a, 0));
  CHECK_RC(weft_udp_send(a, "bc", 2, (struct sockaddr *)&bc), WEFT_EACCES);
  CHECK_OK(weft_udp_free(a));

  /* The option at open. */
  weft_udp_opts_t o;
  weft_udp_opts_init(&o);
  o.allow_broadcast = 1;
  CHECK_OK(weft_udp_open(&o, &a));
  rc = weft_udp_send(a, "bc", 2, (struct sockaddr *)&bc);
  CHECK(rc == 0 || rc == WEFT_ENETUNREACH);
  CHECK_OK(weft_udp_free(a));
  return NULL;
}

static void *multicast_main(void *arg) {
  (void)arg;
  const char *group = "239.255.77.1";
  weft_udp_opts_t o;
  weft_udp_opts_init(&o);
  o.local_host = "0.0.0.0";
  o.reuse_address = 1;
  weft_udp_t *rx;
  CHECK_OK(weft_udp_open(&o, &rx));
  if (!rx)
    return NULL;
  int rc = weft_udp_join_group(rx, group, "127.0.0.1");
  if (rc) {
    print_message("api_udp: multicast skipped: joining %s on lo: %s\n", group,
                  weft_strerror(rc));
    CHECK_OK(weft_udp_free(rx));
    return NULL;
  }
  CHECK_RC(weft_udp_join_group(rx, group, "127.0.0.1"), WEFT_EADDRINUSE);
  weft_udp_opts_init(&o);
  o.multicast_ttl = 1;
  o.multicast_loop = 1;
  weft_udp_t *tx;
  CHECK_OK(weft_udp_open(&o, &tx));
  CHECK_OK(weft_udp_set_multicast_interface(tx, "127.0.0.1"));
  struct sockaddr_in g;
  memset(&g, 0, sizeof g);
  g.sin_family = AF_INET;
  g.sin_port = htons((uint16_t)weft_udp_port(rx));
  inet_pton(AF_INET, group, &g.sin_addr);
  rc = weft_udp_send(tx, "multi", 5, (struct sockaddr *)&g);
  if (rc) {
    print_message("api_udp: multicast skipped: sending to %s: %s\n", group,
                  weft_strerror(rc));
  } else {
    char buf[16];
    weft_udp_info_t info;
    CHECK_RC(weft_udp_recv(rx, buf, sizeof buf, &info), 5);
    CHECK(memcmp(buf, "multi", 5) == 0);
  }
  CHECK_OK(weft_udp_leave_group(rx, group, "127.0.0.1"));
  CHECK_RC(weft_udp_leave_group(rx, group, "127.0.0.1"), WEFT_EADDRNOTAVAIL);
  CHECK_OK(weft_udp_free(tx));
  CHECK_OK(weft_udp_free(rx));
  return NULL;
}

static void test_broadcast_multicast(void **state) {
  (void)state;
  run_in_weft(broadcast_main, NULL, 1);
  run_in_weft(multicast_main, NULL, 2);
}

/* ---- cancellation racing datagrams -------------------------------------- */

#define RACE_N HARNESS_SIZE(3000, 600, 1500)
#define RACE_RX 4
#define RACE_WINDOW 32

typedef struct race {
  weft_udp_t *u;
  atomic_int seen[3000]; /* times each sequence number was received */
  atomic_int received;
  atomic_int cancelled;
  atomic_int stop;
  weft_task_t *rx[RACE_RX];
} race_t;

static void *race_receiver(void *arg) {
  race_t *r = arg;
  unsigned char buf[8];
  while (!atomic_load(&r->stop)) {
    int rc = weft_udp_recv(r->u, buf, sizeof buf, NULL);
    if (rc == WEFT_ECANCELED) {
      weft_task_uncancel();
      atomic_fetch_add(&r->cancelled, 1);
      continue;
    }
    if (rc == WEFT_EBADF)
      break;
    CHECK_RC(rc, 4);
    if (rc != 4)
      break;
    uint32_t seq;
    memcpy(&seq, buf, 4);
    CHECK(seq < (uint32_t)RACE_N);
    if (seq < (uint32_t)RACE_N)
      atomic_fetch_add(&r->seen[seq], 1);
    atomic_fetch_add(&r->received, 1);
  }
  return NULL;
}

static void *race_canceller(void *arg) {
  race_t *r = arg;
  unsigned k = 0;
  while (!atomic_load(&r->stop)) {
    weft_task_cancel(r->rx[k++ % RACE_RX]);
    if (weft_yield() != 0)
      break;
  }
  return NULL;
}

static void *race_main(void *arg) {
  (void)arg;
  race_t *r = calloc(1, sizeof *r);
  r->u = open_on("127.0.0.1", NULL);
  weft_udp_t *tx = open_on("127.0.0.1", NULL);
  if (!r->u || !tx) {
    free(r);
    return NULL;
  }
  for (int i = 0; i < RACE_RX; i++)
    CHECK_OK(weft_spawn(race_receiver, r, &r->rx[i]));
  weft_task_t *canceller;
  CHECK_OK(weft_spawn(race_canceller, r, &canceller));
  struct sockaddr_storage to = name_of(r->u);
  for (uint32_t seq = 0; seq < (uint32_t)RACE_N; seq++) {
    /* A window keeps the socket buffer from overflowing (the kernel would
     * drop, which is UDP, not weft). */
    if (seq >= RACE_WINDOW &&
        !HARNESS_WAIT(atomic_load(&r->received) >= (int)seq - RACE_WINDOW))
      break;
    CHECK_OK(weft_udp_send(tx, &seq, 4, (struct sockaddr *)&to));
  }
  HARNESS_WAIT(atomic_load(&r->received) >= RACE_N);
  atomic_store(&r->stop, 1);
  CHECK_OK(weft_task_await(canceller, NULL));
  weft_task_unref(canceller);
  CHECK_OK(weft_udp_close(r->u)); /* releases the receivers with EBADF */
  for (int i = 0; i < RACE_RX; i++) {
    weft_task_await(r->rx[i], NULL);
    weft_task_unref(r->rx[i]);
  }
  CHECK_EQ(atomic_load(&r->received), RACE_N);
  for (int i = 0; i < RACE_N; i++)
    if (atomic_load(&r->seen[i]) != 1) {
      CHECK_EQ(atomic_load(&r->seen[i]), 1);
      break;
    }
  CHECK(atomic_load(&r->cancelled) > 0);
  CHECK_OK(weft_udp_free(r->u));
  CHECK_OK(weft_udp_free(tx));
  free(r);
  return NULL;
}

/* One worker: a receiver cancelled before the loop has read the datagram
 * gets WEFT_ECANCELED, and the datagram is its next receive's. */
typedef struct cancel_one {
  weft_udp_t *u;
  atomic_int started;
  int rc1, rc2;
  char buf[8];
} cancel_one_t;

static void *cancel_one_rx(void *arg) {
  cancel_one_t *c = arg;
  atomic_store(&c->started, 1);
  c->rc1 = weft_udp_recv(c->u, c->buf, sizeof c->buf, NULL);
  weft_task_uncancel();
  c->rc2 = weft_udp_recv(c->u, c->buf, sizeof c->buf, NULL);
  return NULL;
}

static void *cancel_one_main(void *arg) {
  (void)arg;
  cancel_one_t c = {.u = open_on("127.0.0.1", NULL)};
  weft_udp_t *tx = open_on("127.0.0.1", NULL);
  if (!c.u || !tx)
    return NULL;
  atomic_init(&c.started, 0);
  weft_task_t *t;
  CHECK_OK(weft_spawn(cancel_one_rx, &c, &t));
  if (HARNESS_WAIT_PARKED(c.started)) {
    struct sockaddr_storage to = name_of(c.u);
    CHECK_OK(weft_udp_send(tx, "kept", 4, (struct sockaddr *)&to));
    weft_task_cancel(t); /* before this worker's loop runs again */
  }
  CHECK_OK(weft_task_await(t, NULL));
  weft_task_unref(t);
  CHECK_RC(c.rc1, WEFT_ECANCELED);
  CHECK_RC(c.rc2, 4);
  CHECK(memcmp(c.buf, "kept", 4) == 0);
  CHECK_OK(weft_udp_free(c.u));
  CHECK_OK(weft_udp_free(tx));
  return NULL;
}

static void test_cancel_races_datagram(void **state) {
  (void)state;
  run_in_weft(cancel_one_main, NULL, 1);
  run_in_weft(race_main, NULL, 1);
  run_in_weft(race_main, NULL, 2);
  run_in_weft(race_main, NULL, 4);
}

/* ---- the queue limit pauses reading, nothing lost ----------------------- */

static void *queue_limit_main(void *arg) {
  (void)arg;
  weft_udp_opts_t o;
  weft_udp_opts_init(&o);
  o.local_host = "127.0.0.1";
  o.queue_max = 4;
  o.recv_batch = (unsigned)(uintptr_t)arg;
  weft_udp_t *rx;
  CHECK_OK(weft_udp_open(&o, &rx));
  weft_udp_t *tx = open_on("127.0.0.1", NULL);
  if (!rx || !tx)
    return NULL;
  struct sockaddr_storage to = name_of(rx);
  char buf[8];
  /* Start reading, then let 64 datagrams arrive while nobody receives:
   * weft keeps a few, the kernel the rest, and all come out in order. */
  CHECK_OK(weft_udp_send(tx, "\0\0\0\0", 4, (struct sockaddr *)&to));
  CHECK_RC(weft_udp_recv(rx, buf, sizeof buf, NULL), 4);
  for (uint32_t i = 0; i < 64; i++)
    CHECK_OK(weft_udp_send(tx, &i, 4, (struct sockaddr *)&to));
  CHECK_OK(weft_sleep(20)); /* the loop reads meanwhile (either way fine) */
  for (uint32_t i = 0; i < 64; i++) {
    uint32_t got = 0xffffffff;
    CHECK_RC(weft_udp_recv(rx, &got, sizeof got, NULL), 4);
    CHECK_EQ(got, i);
  }
  CHECK_OK(weft_udp_free(rx));
  CHECK_OK(weft_udp_free(tx));
  return NULL;
}

static void test_queue_limit(void **state) {
  (void)state;
  run_in_weft(queue_limit_main, (void *)(uintptr_t)1, 1);
  run_in_weft(queue_limit_main, (void *)(uintptr_t)8, 2);
}

/* ---- the per-worker server ---------------------------------------------- */

typedef struct srv_stats {
  atomic_int per_slot[8];
  atomic_int handlers;
  atomic_int ended;
} srv_stats_t;

static void echo_handler(weft_udp_t *u, void *arg) {
  srv_stats_t *st = arg;
  unsigned char buf[2048];
  weft_udp_info_t info;
  int slot = weft_worker_index();
  atomic_fetch_add(&st->handlers, 1);
  for (;;) {
    int n = weft_udp_recv(u, buf, sizeof buf, &info);
    if (n < 0) {
      CHECK(n == WEFT_EBADF || n == WEFT_ECANCELED);
      break;
    }
    CHECK_EQ(weft_worker_index(), slot); /* pinned to its endpoint's worker */
    if (n >= 8) { /* the client wrote its own port: the sender matches */
      int p;
      memcpy(&p, buf + 4, sizeof p);
      CHECK_EQ(p, port_of_addr(&info.addr));
    }
    if (slot >= 0 && slot < 8)
      atomic_fetch_add(&st->per_slot[slot], 1);
    CHECK_OK(weft_udp_send(u, buf, (size_t)n, (struct sockaddr *)&info.addr));
  }
  atomic_fetch_add(&st->ended, 1);
}

#define CLIENTS HARNESS_SIZE(64, 16, 32)
#define ROUNDS HARNESS_SIZE(100, 20, 40)

typedef struct client_arg {
  int port;
  int id;
} client_arg_t;

static void *client_main(void *arg) {
  client_arg_t *c = arg;
  weft_udp_opts_t o;
  weft_udp_opts_init(&o);
  o.remote_host = "127.0.0.1";
  o.remote_port = c->port;
  weft_udp_t *u;
  CHECK_OK(weft_udp_open(&o, &u));
  if (!u)
    return NULL;
  for (int i = 0; i < ROUNDS; i++) {
    unsigned char msg[64], back[64];
    memset(msg, c->id, sizeof msg);
    memcpy(msg, &i, sizeof i);
    int myport = weft_udp_port(u); /* a port no other socket holds */
    memcpy(msg + 4, &myport, sizeof myport);
    size_t len = 8 + (size_t)(i % 56);
    CHECK_OK(weft_udp_send(u, msg, len, NULL));
    weft_udp_info_t info;
    memset(back, 0xEE, sizeof back);
    int n = weft_udp_recv(u, back, sizeof back, &info);
    CHECK_RC(n, (int)len);
    if (n != (int)len || memcmp(msg, back, len) != 0) {
      CHECK(0 && "echo differs");
      break;
    }
  }
  CHECK_OK(weft_udp_free(u));
  return NULL;
}

static void *server_main(void *arg) {
  unsigned tasks = (unsigned)(uintptr_t)arg;
  srv_stats_t st;
  memset(&st, 0, sizeof st);
  weft_udp_server_opts_t so;
  weft_udp_server_opts_init(&so);
  so.udp.local_host = "127.0.0.1";
  so.tasks = tasks;
  weft_udp_server_t *srv;
  CHECK_OK(weft_udp_server_start(echo_handler, &st, &so, &srv));
  if (!srv)
    return NULL;
  int nw = weft_worker_count();
  CHECK_EQ(weft_udp_server_endpoints(srv), nw);
  CHECK(weft_udp_server_port(srv) > 0);
  CHECK(weft_udp_server_endpoint(srv, (unsigned)nw) == NULL);
  for (int i = 0; i < nw; i++) {
    weft_udp_t *e = weft_udp_server_endpoint(srv, (unsigned)i);
    CHECK(e != NULL);
    CHECK_EQ(weft_udp_port(e), weft_udp_server_port(srv));
    CHECK_EQ(weft_udp_using_recvmmsg(e), 1); /* UV_UDP_RECVMMSG on Linux */
    CHECK_RC(weft_udp_free(e), WEFT_EPERM);
  }
  client_arg_t ca[CLIENTS];
  weft_task_t *ct[CLIENTS];
  for (int i = 0; i < CLIENTS; i++) {
    ca[i].port = weft_udp_server_port(srv);
    ca[i].id = i;
    CHECK_OK(weft_spawn(client_main, &ca[i], &ct[i]));
  }
  for (int i = 0; i < CLIENTS; i++) {
    CHECK_OK(weft_task_await(ct[i], NULL));
    weft_task_unref(ct[i]);
  }
  int total = 0, slots_used = 0;
  for (int i = 0; i < nw && i < 8; i++) {
    total += atomic_load(&st.per_slot[i]);
    slots_used += atomic_load(&st.per_slot[i]) > 0;
  }
  CHECK_EQ(total, CLIENTS * ROUNDS);
  /* 64 senders over the SO_REUSEPORT sockets: all on one would mean the
   * kernel does not spread (2^-63 by chance with 2 workers). */
  if (nw > 1)
    CHECK(slots_used > 1);
  CHECK_EQ(atomic_load(&st.handlers), nw * (int)tasks);
  CHECK_OK(weft_udp_server_close(srv));
  CHECK_EQ(atomic_load(&st.ended), nw * (int)tasks); /* close waited */
  CHECK_OK(weft_udp_server_close(srv));
  CHECK_OK(weft_udp_server_free(srv));
  return NULL;
}

/* Free without close, while the handlers wait. */
static void *server_free_main(void *arg) {
  (void)arg;
  srv_stats_t st;
  memset(&st, 0, sizeof st);
  weft_udp_server_t *srv;
  weft_udp_server_opts_t so;
  weft_udp_server_opts_init(&so);
  so.udp.family = AF_INET;
  so.tasks = 3;
  CHECK_OK(weft_udp_server_start(echo_handler, &st, &so, &srv));
  if (!srv)
    return NULL;
  HARNESS_WAIT(atomic_load(&st.handlers) == 3 * weft_worker_count());
  CHECK_OK(weft_udp_server_free(srv));
  CHECK_EQ(atomic_load(&st.ended), 3 * weft_worker_count());
  return NULL;
}

static void test_server(void **state) {
  (void)state;
  run_in_weft(server_main, (void *)(uintptr_t)1, 1);
  run_in_weft(server_main, (void *)(uintptr_t)2, 2);
  run_in_weft(server_main, (void *)(uintptr_t)4, 4);
  run_in_weft(server_free_main, NULL, 2);
}

/* ---- the home worker: pinned and stolen users --------------------------- */

typedef struct hop {
  weft_udp_t *home_ep; /* homed on worker 0 */
  weft_udp_t *peer;
  int errors;
} hop_t;

static void *pinned_user(void *arg) {
  hop_t *h = arg;
  struct sockaddr_storage to = name_of(h->peer), from = name_of(h->home_ep);
  char buf[16];
  weft_udp_info_t info;
  for (int i = 0; i < 50; i++) {
    CHECK_EQ(weft_worker_index(), 1);
    CHECK_OK(weft_udp_send(h->home_ep, "ping", 4, (struct sockaddr *)&to));
    CHECK_EQ(weft_worker_index(), 1); /* back on its pin */
    CHECK_RC(weft_udp_recv(h->peer, buf, sizeof buf, &info), 4);
    CHECK_OK(weft_udp_send(h->peer, "pong", 4, (struct sockaddr *)&from));
    CHECK_RC(weft_udp_recv(h->home_ep, buf, sizeof buf, &info), 4);
    CHECK_EQ(weft_worker_index(), 1);
    CHECK(memcmp(buf, "pong", 4) == 0);
  }
  return NULL;
}

static void *spin(void *arg) {
  atomic_int *stop = arg;
  while (!atomic_load(stop))
    if (weft_yield() != 0)
      break;
  return NULL;
}

static void *stolen_user(void *arg) {
  hop_t *h = arg;
  struct sockaddr_storage to = name_of(h->peer);
  char buf[16];
  for (int i = 0; i < 200; i++) {
    CHECK_OK(weft_udp_send(h->home_ep, "s", 1, (struct sockaddr *)&to));
    CHECK_RC(weft_udp_recv(h->peer, buf, sizeof buf, NULL), 1);
    if (weft_yield() != 0) /* a chance to be stolen between calls */
      break;
  }
  return NULL;
}

/* Open an endpoint into *(weft_udp_t **)arg, homed where this task runs. */
static void *open_into(void *arg) {
  *(weft_udp_t **)arg = open_on("127.0.0.1", NULL);
  return NULL;
}

static void *hop_main(void *arg) {
  (void)arg;
  hop_t h;
  memset(&h, 0, sizeof h);
  weft_spawn_opts_t so;
  weft_spawn_opts_init(&so);
  so.pin = 0;
  weft_task_t *t;
  CHECK_OK(weft_spawn_ex(open_into, &h.home_ep, &so, &t));
  CHECK_OK(weft_task_await(t, NULL));
  weft_task_unref(t);
  so.pin = 1;
  CHECK_OK(weft_spawn_ex(open_into, &h.peer, &so, &t));
  CHECK_OK(weft_task_await(t, NULL));
  weft_task_unref(t);
  if (!h.home_ep || !h.peer)
    return NULL;
  CHECK_OK(weft_spawn_ex(pinned_user, &h, &so, &t));
  CHECK_OK(weft_task_await(t, NULL));
  weft_task_unref(t);

  /* Unpinned users among spinners: they are stolen and forwarded. */
  atomic_int stop;
  atomic_init(&stop, 0);
  weft_task_t *sp[4], *us[4];
  for (int i = 0; i < 4; i++)
    CHECK_OK(weft_spawn(spin, &stop, &sp[i]));
  hop_t hs[4];
  for (int i = 0; i < 4; i++) {
    hs[i].home_ep = h.home_ep;
    hs[i].peer = open_on("127.0.0.1", NULL);
    CHECK_OK(weft_spawn(stolen_user, &hs[i], &us[i]));
  }
  for (int i = 0; i < 4; i++) {
    CHECK_OK(weft_task_await(us[i], NULL));
    weft_task_unref(us[i]);
    CHECK_OK(weft_udp_free(hs[i].peer));
  }
  atomic_store(&stop, 1);
  for (int i = 0; i < 4; i++) {
    CHECK_OK(weft_task_await(sp[i], NULL));
    weft_task_unref(sp[i]);
  }
  CHECK_OK(weft_udp_free(h.home_ep));
  CHECK_OK(weft_udp_free(h.peer));
  return NULL;
}

static void test_home_worker(void **state) {
  (void)state;
  run_in_weft(hop_main, NULL, 2);
  run_in_weft(hop_main, NULL, 3);
}

/* ---- another runtime is refused ----------------------------------------- */

typedef struct two_rt {
  _Atomic(weft_udp_t *) u;
  _Atomic(weft_udp_server_t *) srv;
  atomic_int b_done;
} two_rt_t;

static void nop_handler(weft_udp_t *u, void *arg) {
  char b[4];
  (void)arg;
  while (weft_udp_recv(u, b, sizeof b, NULL) >= 0)
    ;
}

static void *rt_a_main(void *arg) {
  two_rt_t *x = arg;
  weft_udp_t *u = open_on("127.0.0.1", NULL);
  weft_udp_server_t *srv;
  CHECK_OK(weft_udp_server_start(nop_handler, NULL, NULL, &srv));
  atomic_store(&x->u, u);
  atomic_store(&x->srv, srv);
  for (int i = 0; i < 30000 && !atomic_load(&x->b_done); i++)
    CHECK_OK(weft_sleep(1));
  CHECK(atomic_load(&x->b_done));
  CHECK_OK(weft_udp_free(u));
  CHECK_OK(weft_udp_server_free(srv));
  return NULL;
}

static void *rt_b_main(void *arg) {
  two_rt_t *x = arg;
  weft_udp_t *u = NULL;
  weft_udp_server_t *srv = NULL;
  for (int i = 0; i < 30000 && !(srv = atomic_load(&x->srv)); i++)
    CHECK_OK(weft_sleep(1));
  u = atomic_load(&x->u);
  CHECK(u != NULL && srv != NULL);
  if (u && srv) {
    char b[4];
    struct sockaddr_storage to = name_of(u);
    CHECK_RC(weft_udp_recv(u, b, sizeof b, NULL), WEFT_EOTHER_RUNTIME);
    CHECK_RC(weft_udp_send(u, "x", 1, (struct sockaddr *)&to),
             WEFT_EOTHER_RUNTIME);
    CHECK_RC(weft_udp_drain(u), WEFT_EOTHER_RUNTIME);
    CHECK_RC(weft_udp_set_ttl(u, 3), WEFT_EOTHER_RUNTIME);
    CHECK_RC(weft_udp_join_group(u, "239.1.1.1", NULL), WEFT_EOTHER_RUNTIME);
    CHECK_RC(weft_udp_close(u), WEFT_EOTHER_RUNTIME);
    CHECK_RC(weft_udp_free(u), WEFT_EOTHER_RUNTIME);
    CHECK_RC(weft_udp_server_close(srv), WEFT_EOTHER_RUNTIME);
    CHECK_RC(weft_udp_server_free(srv), WEFT_EOTHER_RUNTIME);
    CHECK(weft_udp_fileno(u) >= 0); /* snapshots work from anywhere */
    CHECK(weft_udp_server_port(srv) > 0);
  }
  atomic_store(&x->b_done, 1);
  return NULL;
}

typedef struct rt_arg {
  weft_task_fn fn;
  two_rt_t *x;
} rt_arg_t;

static void *rt_thread(void *arg) {
  rt_arg_t *a = arg;
  weft_config_t cfg;
  weft_config_init(&cfg);
  cfg.workers = 2;
  intptr_t rc = weft_run(a->fn, a->x, &cfg, NULL);
  return (void *)rc;
}

static void test_other_runtime_refused(void **state) {
  (void)state;
  two_rt_t x;
  memset(&x, 0, sizeof x);
  atomic_init(&x.u, NULL);
  atomic_init(&x.srv, NULL);
  atomic_init(&x.b_done, 0);
  rt_arg_t aa = {rt_a_main, &x}, ab = {rt_b_main, &x};
  pthread_t ta, tb;
  void *ra, *rb;
  harness_reset();
  assert_int_equal(pthread_create(&ta, NULL, rt_thread, &aa), 0);
  assert_int_equal(pthread_create(&tb, NULL, rt_thread, &ab), 0);
  pthread_join(ta, &ra);
  pthread_join(tb, &rb);
  harness_assert_clean();
  assert_int_equal((intptr_t)ra, 0);
  assert_int_equal((intptr_t)rb, 0);
}

/* ---- shutdown with everything left open --------------------------------- */

static void *blocked_rx(void *arg) {
  char b[4];
  CHECK_RC(weft_udp_recv(arg, b, sizeof b, NULL), WEFT_ECANCELED);
  return NULL;
}

/* The handlers end during weft_run's shutdown, after main returned. */
static srv_stats_t leave_stats;

static void *leave_open_main(void *arg) {
  (void)arg;
  weft_udp_t *a = open_on("127.0.0.1", NULL), *b = open_on("127.0.0.1", NULL);
  weft_udp_t *c = open_on("127.0.0.1", NULL);
  weft_udp_server_t *srv;
  memset(&leave_stats, 0, sizeof leave_stats);
  CHECK_OK(weft_udp_server_start(echo_handler, &leave_stats, NULL, &srv));
  if (!a || !b || !c)
    return NULL;
  CHECK_OK(weft_spawn(blocked_rx, a, NULL));
  struct sockaddr_storage to = name_of(b);
  char x[4];
  CHECK_OK(weft_udp_send(c, "one", 3, (struct sockaddr *)&to));
  CHECK_RC(weft_udp_recv(b, x, sizeof x, NULL), 3); /* b now reads */
  for (int i = 0; i < 10; i++) /* queued in b, never received */
    CHECK_OK(weft_udp_send(c, "left", 4, (struct sockaddr *)&to));
  CHECK_OK(weft_udp_close(c)); /* closed, not freed */
  HARNESS_WAIT(atomic_load(&leave_stats.handlers) == weft_worker_count());
  CHECK_OK(weft_sleep(20)); /* let b's loop queue some datagrams */
  return NULL; /* weft_run closes and frees the rest (LSan checks) */
}

static void test_shutdown_leaves_nothing(void **state) {
  (void)state;
  run_in_weft(leave_open_main, NULL, 2);
  run_in_weft(leave_open_main, NULL, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_datagrams),
      cmocka_unit_test(test_ipv6),
      cmocka_unit_test(test_connected),
      cmocka_unit_test(test_broadcast_multicast),
      cmocka_unit_test(test_cancel_races_datagram),
      cmocka_unit_test(test_queue_limit),
      cmocka_unit_test(test_server),
      cmocka_unit_test(test_home_worker),
      cmocka_unit_test(test_other_runtime_refused),
      cmocka_unit_test(test_shutdown_leaves_nothing),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
