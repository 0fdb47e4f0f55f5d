/*
 * Load generator of bench/forwarding: one thread, non-blocking UDP sockets
 * (one per participant), paced sends and recvmmsg receives, one-way latency
 * from a CLOCK_MONOTONIC timestamp in every payload.
 *
 * usage: loadgen MODE RELAY_PORT PPS_PER_SENDER SECONDS PAYLOAD_BYTES < participants
 *   MODE wzp: stdin lines "room token_hex" (BIND with the token, FULL frames out, TRUNK in)
 *   MODE raw: stdin lines "room -"        (register 0xFF room slot, raw datagrams both ways)
 *   an optional third column is the UDP port of that participant's relay (federation runs)
 * prints one JSON line: sent, received, expected, p50/p95/p99/p999 latency in microseconds.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXP 4096
#define HIST_US 200000
#define BATCH 64
#define MAXDG 2048

static int fds[MAXP];
static int rooms[MAXP];
static unsigned char tokens[MAXP][16];
static uint32_t seqs[MAXP];
static int ports[MAXP];
static int room_size[65536];
static uint64_t hist[HIST_US + 1];

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void put32(unsigned char *p, uint32_t v) {
  p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v;
}
static uint32_t get16(const unsigned char *p) { return ((uint32_t)p[0] << 8) | p[1]; }

static void record(const unsigned char *payload, uint64_t now, uint64_t *received) {
  uint64_t sent;
  memcpy(&sent, payload, 8);
  uint64_t us = now > sent ? (now - sent) / 1000 : 0;
  if (us > HIST_US) us = HIST_US;
  hist[us]++;
  (*received)++;
}

static uint64_t pct(uint64_t total, double q) {
  uint64_t want = (uint64_t)(total * q), acc = 0;
  for (int i = 0; i <= HIST_US; i++) {
    acc += hist[i];
    if (acc > want) return i;
  }
  return HIST_US;
}

int main(int argc, char **argv) {
  if (argc < 6) {
    fprintf(stderr, "usage: loadgen wzp|raw PORT PPS SECONDS PAYLOAD < participants\n");
    return 2;
  }
  int wzp = strcmp(argv[1], "wzp") == 0;
  int port = atoi(argv[2]);
  double pps = atof(argv[3]);
  double seconds = atof(argv[4]);
  int payload = atoi(argv[5]);
  if (payload < 12) payload = 12;
  int n = 0;
  char line[256];
  while (n < MAXP && fgets(line, sizeof line, stdin)) {
    char tok[64];
    int room, p = 0;
    if (sscanf(line, "%d %63s %d", &room, tok, &p) < 2) continue;
    rooms[n] = room;
    ports[n] = p;
    room_size[room]++;
    if (wzp) {
      for (int i = 0; i < 16; i++) sscanf(tok + 2 * i, "%2hhx", &tokens[n][i]);
    }
    n++;
  }
  struct sockaddr_in relay = {0};
  relay.sin_family = AF_INET;
  relay.sin_port = htons(port);
  relay.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int i = 0; i < n; i++) {
    fds[i] = socket(AF_INET, SOCK_DGRAM, 0);
    int buf = 4 << 20;
    setsockopt(fds[i], SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    setsockopt(fds[i], SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    struct sockaddr_in me = {0};
    me.sin_family = AF_INET;
    me.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fds[i], (struct sockaddr *)&me, sizeof me);
    struct sockaddr_in to = relay;
    if (ports[i] > 0) to.sin_port = htons(ports[i]);
    connect(fds[i], (struct sockaddr *)&to, sizeof to);
    fcntl(fds[i], F_SETFL, O_NONBLOCK);
  }
  /* Bind / register every participant, retrying until acknowledged. */
  /* Sequence numbers keep growing across runs (a real sender never goes back). */
  for (int i = 0; i < n; i++) seqs[i] = (uint32_t)(now_ns() / 1000000ull * 64);
  unsigned char dg[MAXDG];
  for (int i = 0; i < n; i++) {
    int acked = 0;
    for (int attempt = 0; attempt < 200 && !acked; attempt++) {
      int len;
      if (wzp) {
        /* BIND: 0x10 | token | zero padding to 48 bytes (protocol/BINDING.md 4.5). */
        memset(dg, 0, 48);
        dg[0] = 0x10;
        memcpy(dg + 1, tokens[i], 16);
        len = 48;
      } else {
        /* register: 0xFF room u16, member slot u16 (a slot re-registered moves) */
        dg[0] = 0xFF; dg[1] = rooms[i] >> 8; dg[2] = rooms[i]; dg[3] = i >> 8; dg[4] = i;
        len = 5;
      }
      send(fds[i], dg, len, 0);
      uint64_t until = now_ns() + 5000000ull;
      while (now_ns() < until && !acked) {
        ssize_t r = recv(fds[i], dg, sizeof dg, 0);
        if (r == 33 && dg[0] == 0x14 && memcmp(dg + 1, tokens[i], 16) == 0) {
          /* BIND_CHALLENGE: echo it as BIND_CONFIRM (0x15) from this socket. */
          dg[0] = 0x15;
          send(fds[i], dg, 33, 0);
        } else if (r > 0 && (dg[0] == 0x11 || dg[0] == 0xFE)) {
          acked = 1;
        }
      }
    }
    if (!acked) {
      fprintf(stderr, "participant %d: no bind ack\n", i);
      return 1;
    }
  }
  /* Drain anything left over. */
  for (int i = 0; i < n; i++) while (recv(fds[i], dg, sizeof dg, 0) > 0) {}

  static unsigned char bufs[BATCH][MAXDG];
  struct mmsghdr msgs[BATCH];
  struct iovec iovs[BATCH];
  for (int k = 0; k < BATCH; k++) {
    iovs[k].iov_base = bufs[k];
    iovs[k].iov_len = MAXDG;
    memset(&msgs[k], 0, sizeof msgs[k]);
    msgs[k].msg_hdr.msg_iov = &iovs[k];
    msgs[k].msg_hdr.msg_iovlen = 1;
  }
  uint64_t sent = 0, received = 0, expected = 0, send_errors = 0;
  double total_rate = pps * n;
  uint64_t start = now_ns();
  uint64_t stop_send = start + (uint64_t)(seconds * 1e9);
  uint64_t stop_all = stop_send + 300000000ull; /* 300 ms for stragglers */
  int next = 0;
  unsigned char out[MAXDG];
  for (;;) {
    uint64_t t = now_ns();
    if (t >= stop_all) break;
    if (t < stop_send) {
      uint64_t due = (uint64_t)((double)(t - start) / 1e9 * total_rate);
      int budget = 256;
      while (sent < due && budget-- > 0) {
        int i = next;
        next = (next + 1) % n;
        uint32_t seq = ++seqs[i];
        int len;
        unsigned char *pl;
        if (wzp) {
          out[0] = 0x00;
          out[1] = 0x02; out[2] = 0x00; out[3] = 0x00; out[4] = 0x02; out[5] = 0x00; out[6] = 0x00;
          put32(out + 7, seq);
          put32(out + 11, seq * 20);
          out[15] = 0; out[16] = 0;
          pl = out + 17;
          len = 17 + payload;
        } else {
          out[0] = rooms[i] >> 8; out[1] = rooms[i];
          pl = out + 2;
          len = 17 + payload;
        }
        uint64_t ts = now_ns();
        memcpy(pl, &ts, 8);
        put32(pl + 8, (uint32_t)i);
        if (send(fds[i], out, len, 0) < 0) send_errors++;
        sent++;
        expected += room_size[rooms[i]] - 1;
      }
    }
    for (int i = 0; i < n; i++) {
      for (;;) {
        int got = recvmmsg(fds[i], msgs, BATCH, MSG_DONTWAIT, NULL);
        if (got <= 0) break;
        uint64_t now = now_ns();
        for (int k = 0; k < got; k++) {
          unsigned char *p = bufs[k];
          unsigned int len = msgs[k].msg_len;
          if (wzp) {
            if (len < 3 || p[0] != 0x02) continue;
            unsigned int count = get16(p + 1), pos = 3;
            for (unsigned int e = 0; e < count && pos + 4 <= len; e++) {
              unsigned int elen = get16(p + pos + 2);
              unsigned char *frame = p + pos + 4;
              if (pos + 4 + elen <= len && elen >= 17 + 12 && frame[0] == 0x00) {
                record(frame + 17, now, &received);
              }
              pos += 4 + elen;
            }
          } else if (len >= 2 + 12) {
            record(p + 2, now, &received);
          }
        }
        if (got < BATCH) break;
      }
    }
  }
  double elapsed = (double)(stop_send - start) / 1e9;
  printf("{\"sent\":%llu,\"received\":%llu,\"expected\":%llu,\"send_errors\":%llu,\"seconds\":%.3f,"
         "\"p50_us\":%llu,\"p95_us\":%llu,\"p99_us\":%llu,\"p999_us\":%llu}\n",
         (unsigned long long)sent, (unsigned long long)received, (unsigned long long)expected,
         (unsigned long long)send_errors, elapsed, (unsigned long long)pct(received, 0.5),
         (unsigned long long)pct(received, 0.95), (unsigned long long)pct(received, 0.99),
         (unsigned long long)pct(received, 0.999));
  return 0;
}
