/*
 * Intrusive circular doubly linked list (libuv src/queue.h in spirit), and
 * container_of. Not thread-safe: every list is owned by one thread or guarded
 * by its owner's lock.
 */
#ifndef WEFT_LIST_H
#define WEFT_LIST_H

#include <stddef.h>

#define weft__container_of(ptr, type, member)                                  \
  ((type *)((char *)(ptr)-offsetof(type, member)))

typedef struct weft__list {
  struct weft__list *prev; /* previous node, or the head */
  struct weft__list *next; /* next node, or the head */
} weft__list_t;

static inline void weft__list_init(weft__list_t *h) { h->prev = h->next = h; }

static inline int weft__list_empty(const weft__list_t *h) {
  return h->next == h;
}

static inline void weft__list_push_back(weft__list_t *h, weft__list_t *n) {
  n->next = h;
  n->prev = h->prev;
  h->prev->next = n;
  h->prev = n;
}

static inline void weft__list_push_front(weft__list_t *h, weft__list_t *n) {
  n->prev = h;
  n->next = h->next;
  h->next->prev = n;
  h->next = n;
}

static inline void weft__list_remove(weft__list_t *n) {
  n->prev->next = n->next;
  n->next->prev = n->prev;
  n->prev = n->next = n;
}

/* A node is linked iff it is not pointing at itself (after remove/init). */
static inline int weft__list_linked(const weft__list_t *n) {
  return n->next != n;
}

static inline weft__list_t *weft__list_pop_front(weft__list_t *h) {
  weft__list_t *n = h->next;
  if (n == h)
    return NULL;
  weft__list_remove(n);
  return n;
}

#endif /* WEFT_LIST_H */
