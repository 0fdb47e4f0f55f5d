/*
 * Load generator of bench/forwarding: one thread, non-blocking UDP sockets
 * (one per participant), paced sends and recvmmsg receives, one-way latency
 * from a CLOCK_MONOTONIC timestamp in every payload.
 *
 * usage: loadgen MODE RELAY_PORT PPS_PER_SENDER SECONDS PAYLOAD_BYTES < participants
 *   MODE wzp: stdin lines "room token_hex" (BIND with the token, FULL frames out, TRUNK in)
 *   MODE raw: stdin lines "room -"        (register 0xFF room slot, raw datagrams both ways)
 *   an optional third column is the UDP port of that participant's relay (federation runs)
 * prints one JSON line: sent, received, expected, p50/p95/p99/p999 latency in microseconds,
 * the same percentiles by the kernel's receive timestamp (p*_k_us), and the generator's stalls.
 *
 * Two latencies: p*_us ends when this thread reads the datagram (so it includes any time this
 * thread was not running); p*_k_us ends at the kernel's receive timestamp (SO_TIMESTAMPNS,
 * taken on loopback when the relay's send reaches the receive queue), so it does not include
 * the generator's own scheduling delays. stall_* counts loop iterations that took over 1 ms.
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

#include "stalls.h"

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
static uint64_t hist_k[HIST_US + 1];
/* CLOCK_REALTIME minus CLOCK_MONOTONIC (ns): kernel receive stamps are realtime. */
static int64_t real_minus_mono;

static uint64_t clock_ns(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t now_ns(void) { return clock_ns(CLOCK_MONOTONIC); }

static void put32(unsigned char *p, uint32_t v) {
  p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v;
}
static uint32_t get16(const unsigned char *p) { return ((uint32_t)p[0] << 8) | p[1]; }

/* The offset between the two clocks, from the tightest of a few adjacent readings. */
static int64_t measure_real_minus_mono(void) {
  uint64_t best = UINT64_MAX;
  int64_t off = 0;
  for (int i = 0; i < 16; i++) {
    uint64_t a = clock_ns(CLOCK_MONOTONIC), r = clock_ns(CLOCK_REALTIME), b = clock_ns(CLOCK_MONOTONIC);
    if (b - a < best) {
      best = b - a;
      off = (int64_t)r - (int64_t)(a + (b - a) / 2);
    }
  }
  return off;
}

/* LOADGEN_TRACE=1: the worst latency per 100 ms window of the run, on stderr (a diagnostic). */
static int trace;
static uint64_t trace_start;
static uint64_t trace_max[1024];

static void bucket(uint64_t *h, uint64_t now, uint64_t sent) {
  uint64_t us = now > sent ? (now - sent) / 1000 : 0;
  if (trace && h == hist && now > trace_start) {
    uint64_t w = (now - trace_start) / 100000000ull;
    if (w < 1024 && us > trace_max[w]) trace_max[w] = us;
  }
  if (us > HIST_US) us = HIST_US;
  h[us]++;
}

/* knows: monotonic ns of the kernel's receive stamp, 0 when the datagram carried none. */
static void record(const unsigned char *payload, uint64_t now, uint64_t knows, uint64_t *received,
                   uint64_t *received_k) {
  uint64_t sent;
  memcpy(&sent, payload, 8);
  bucket(hist, now, sent);
  (*received)++;
  if (knows != 0) {
    bucket(hist_k, knows, sent);
    (*received_k)++;
  }
}

static uint64_t pct(const uint64_t *h, uint64_t total, double q) {
  uint64_t want = (uint64_t)(total * q), acc = 0;
  for (int i = 0; i <= HIST_US; i++) {
    acc += h[i];
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
    int on = 1;
    setsockopt(fds[i], SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on);
  }
  real_minus_mono = measure_real_minus_mono();
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
  static unsigned char ctrl[BATCH][CMSG_SPACE(sizeof(struct timespec))];
  for (int k = 0; k < BATCH; k++) {
    iovs[k].iov_base = bufs[k];
    iovs[k].iov_len = MAXDG;
    memset(&msgs[k], 0, sizeof msgs[k]);
    msgs[k].msg_hdr.msg_iov = &iovs[k];
    msgs[k].msg_hdr.msg_iovlen = 1;
  }
  uint64_t sent = 0, received = 0, received_k = 0, expected = 0, send_errors = 0;
  struct stalls st = {0, 0, 0};
  uint64_t prev_t = 0, skipped = 0;
  /* LOADGEN_MAX_LATE_US: sends more than this late (the generator did not run) are skipped
   * instead of sent in a burst; unset or 0: every due send goes out, late ones at once. */
  const char *late_env = getenv("LOADGEN_MAX_LATE_US");
  uint64_t max_late = late_env == NULL ? 0 : (uint64_t)(atof(late_env) * 1e-6 * pps * n);
  if (late_env != NULL && atof(late_env) > 0 && max_late < 1) max_late = 1;
  double total_rate = pps * n;
  uint64_t start = now_ns();
  trace = getenv("LOADGEN_TRACE") != NULL;
  trace_start = start;
  uint64_t stop_send = start + (uint64_t)(seconds * 1e9);
  uint64_t stop_all = stop_send + 300000000ull; /* 300 ms for stragglers */
  int next = 0;
  unsigned char out[MAXDG];
  for (;;) {
    uint64_t t = now_ns();
    if (t >= stop_all) break;
    if (prev_t != 0 && t < stop_send) stalls_note(&st, t - prev_t);
    prev_t = t;
    if (t < stop_send) {
      uint64_t due = (uint64_t)((double)(t - start) / 1e9 * total_rate) - skipped;
      if (max_late > 0 && due > sent + max_late) {
        /* Late by more than LOADGEN_MAX_LATE_US: those sends are skipped, not burst out. */
        uint64_t skip = due - sent - max_late;
        skipped += skip;
        due -= skip;
        next = (int)((next + skip) % (uint64_t)n);
      }
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
        for (int k = 0; k < BATCH; k++) {
          msgs[k].msg_hdr.msg_control = ctrl[k];
          msgs[k].msg_hdr.msg_controllen = sizeof ctrl[k];
        }
        int got = recvmmsg(fds[i], msgs, BATCH, MSG_DONTWAIT, NULL);
        if (got <= 0) break;
        uint64_t now = now_ns();
        for (int k = 0; k < got; k++) {
          unsigned char *p = bufs[k];
          unsigned int len = msgs[k].msg_len;
          uint64_t knows = 0;
          for (struct cmsghdr *c = CMSG_FIRSTHDR(&msgs[k].msg_hdr); c != NULL;
               c = CMSG_NXTHDR(&msgs[k].msg_hdr, c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_TIMESTAMPNS) {
              struct timespec ts;
              memcpy(&ts, CMSG_DATA(c), sizeof ts);
              int64_t real = (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
              knows = (uint64_t)(real - real_minus_mono);
            }
          }
          if (wzp) {
            if (len < 3 || p[0] != 0x02) continue;
            unsigned int count = get16(p + 1), pos = 3;
            for (unsigned int e = 0; e < count && pos + 4 <= len; e++) {
              unsigned int elen = get16(p + pos + 2);
              unsigned char *frame = p + pos + 4;
              if (pos + 4 + elen <= len && elen >= 17 + 12 && frame[0] == 0x00) {
                record(frame + 17, now, knows, &received, &received_k);
              }
              pos += 4 + elen;
            }
          } else if (len >= 2 + 12) {
            record(p + 2, now, knows, &received, &received_k);
          }
        }
        if (got < BATCH) break;
      }
    }
  }
  double elapsed = (double)(stop_send - start) / 1e9;
  if (trace) {
    fprintf(stderr, "loadgen trace, worst latency (us) per 100 ms:");
    for (uint64_t w = 0; w < 1024 && w * 100000000ull < stop_all - start; w++)
      fprintf(stderr, " %llu", (unsigned long long)trace_max[w]);
    fprintf(stderr, "\n");
  }
  printf("{\"sent\":%llu,\"received\":%llu,\"expected\":%llu,\"send_errors\":%llu,\"seconds\":%.3f,"
         "\"p50_us\":%llu,\"p95_us\":%llu,\"p99_us\":%llu,\"p999_us\":%llu,"
         "\"received_k\":%llu,\"p50_k_us\":%llu,\"p99_k_us\":%llu,\"p999_k_us\":%llu,"
         "\"stalls\":%llu,\"stall_ms\":%.3f,\"max_gap_us\":%llu,\"skipped\":%llu}\n",
         (unsigned long long)sent, (unsigned long long)received, (unsigned long long)expected,
         (unsigned long long)send_errors, elapsed, (unsigned long long)pct(hist, received, 0.5),
         (unsigned long long)pct(hist, received, 0.95), (unsigned long long)pct(hist, received, 0.99),
         (unsigned long long)pct(hist, received, 0.999), (unsigned long long)received_k,
         (unsigned long long)pct(hist_k, received_k, 0.5),
         (unsigned long long)pct(hist_k, received_k, 0.99),
         (unsigned long long)pct(hist_k, received_k, 0.999), (unsigned long long)st.count,
         (double)st.lost_ns / 1e6, (unsigned long long)(st.max_gap_ns / 1000),
         (unsigned long long)skipped);
  return 0;
}
