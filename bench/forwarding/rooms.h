/*
 * The rooms of bench/forwarding's raw protocol, shared by its C relays (relay.c, nativefwd.c):
 * 0xFF room u16 slot u16 registers the source as member `slot` of a room (a slot registered
 * again moves); any other datagram goes to every other member of the sender's room.
 */
#ifndef WZP_BENCH_ROOMS_H
#define WZP_BENCH_ROOMS_H
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

#define MAX_ROOMS 1024
#define MAX_MEMBERS 64

struct room {
  int n;
  uint32_t slot[MAX_MEMBERS];
  struct sockaddr_in addr[MAX_MEMBERS];
};

static int32_t room_of_port[65536];
static struct room rooms[MAX_ROOMS];

static inline void rooms_init(void) { memset(room_of_port, 0xff, sizeof room_of_port); }

/* 1 if buf is a registration (then applied: answer it with 0xFE), else 0. */
static inline int rooms_register(const unsigned char *buf, size_t n, const struct sockaddr_in *from) {
  if (n != 5 || buf[0] != 0xff) {
    return 0;
  }
  unsigned r = ((unsigned)((buf[1] << 8) | buf[2])) & (MAX_ROOMS - 1);
  uint32_t slot = (uint32_t)((buf[3] << 8) | buf[4]);
  struct room *rm = &rooms[r];
  int k = 0;
  while (k < rm->n && rm->slot[k] != slot) {
    k++;
  }
  if (k == rm->n) {
    if (rm->n == MAX_MEMBERS) {
      return 1;
    }
    rm->n++;
  }
  rm->slot[k] = slot;
  rm->addr[k] = *from;
  room_of_port[ntohs(from->sin_port)] = (int32_t)r;
  return 1;
}

/* The room of a source port, or NULL if it registered none. */
static inline struct room *rooms_of(const struct sockaddr_in *from) {
  int32_t r = room_of_port[ntohs(from->sin_port)];
  return r < 0 ? NULL : &rooms[r];
}
#endif
