/*
 * wzp_udp: batched UDP I/O for the relay's media socket (Linux sendmmsg and
 * recvmmsg).
 *
 * The socket stays node:dgram's: JS passes its file descriptor (already
 * non-blocking, bound, owned and closed by libuv).
 *
 * Send: one call sends one datagram, made of an optional shared prefix and a
 * buffer, to N destinations in as few sendmmsg(2) calls as the kernel allows
 * (normally one per 256 destinations).
 *
 * Receive: recvStart() watches a dup(2) of the descriptor with a libuv poll
 * handle on the calling thread's loop (dgram's own reading is stopped by JS
 * first; the dup keeps libuv's one-watcher-per-descriptor rule: dgram's
 * handle still watches the original for its queued sends). Every wakeup
 * reads up to `slots` datagrams with one recvmmsg(2) into a ring JS
 * allocated once, writes each one's length and source into a metadata
 * array, and calls JS once per batch. No allocation per datagram or batch.
 *
 * Send-only socket: sendSocketOpen() makes a second socket bound to the same
 * address and port (SO_REUSEPORT, set on the media socket after its bind, and
 * a one-instruction classic BPF program that steers every incoming datagram
 * of the group to the media socket). Sends go through it. It is never watched
 * by epoll, so freeing a sent datagram (sock_wfree) finds no waiter on its
 * wait queue and takes no lock to wake one; on the media socket, which epoll
 * watches for reads, every sent datagram did. The caller keeps the media
 * socket for everything else and falls back to it when this fails.
 *
 * Nothing here throws on the hot path: errors of single destinations are
 * reported in an Int32Array, EAGAIN stops the call and returns how far it
 * got, so JS can queue the rest (its stated policy). No global state: the
 * add-on is safe to load in every worker thread.
 *
 * Destination records (RECORD_SIZE bytes each, written by JS):
 *   [0]      family: 4 or 6
 *   [2..3]   port, big endian
 *   [4..7]   IPv6 scope id, little endian
 *   [8..23]  address (IPv4: first 4 bytes), network order
 */
#ifndef __linux__
#error "wzp_udp needs Linux sendmmsg(2); the relay falls back to node:dgram elsewhere"
#endif
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <stdio.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <node_api.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <uv.h>

#define RECORD_SIZE 32
#define CHUNK 256
/* Largest prefix + buffer joined into one iovec by sendMany (on the stack). */
#define JOIN_MAX 1536

typedef union {
  struct sockaddr_in v4;
  struct sockaddr_in6 v6;
} addr_t;

static int get_buffer(napi_env env, napi_value v, uint8_t **data, size_t *len) {
  bool is;
  if (napi_is_buffer(env, v, &is) != napi_ok || !is) {
    return 0;
  }
  return napi_get_buffer_info(env, v, (void **)data, len) == napi_ok;
}

static napi_value num(napi_env env, int64_t n) {
  napi_value v;
  napi_create_int64(env, n, &v);
  return v;
}

static socklen_t fill_addr(const uint8_t *rec, addr_t *a) {
  uint16_t port = (uint16_t)((rec[2] << 8) | rec[3]);
  if (rec[0] == 6) {
    memset(&a->v6, 0, sizeof a->v6);
    a->v6.sin6_family = AF_INET6;
    a->v6.sin6_port = htons(port);
    memcpy(&a->v6.sin6_scope_id, rec + 4, 4);
    memcpy(&a->v6.sin6_addr, rec + 8, 16);
    return sizeof a->v6;
  }
  memset(&a->v4, 0, sizeof a->v4);
  a->v4.sin_family = AF_INET;
  a->v4.sin_port = htons(port);
  memcpy(&a->v4.sin_addr, rec + 8, 4);
  return sizeof a->v4;
}

/*
 * sendMany(fd, prefix: Buffer | null, buf: Buffer, records: Buffer, count, out: Int32Array)
 *   -> number of destinations handled (sent or failed), < count only on EAGAIN.
 * out[0] += failed destinations, out[1] += sent datagrams, out[2] += sendmmsg calls;
 * then up to (out.length - 4) / 2 pairs (destination index, errno) from out[4],
 * out[3] = pairs written (JS resets out[0..3] before the call).
 * A negative result is a usage error (bad arguments), never a socket error.
 */
static napi_value send_many(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 6) {
    return num(env, -1);
  }
  int32_t fd, count;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
      napi_get_value_int32(env, argv[4], &count) != napi_ok || count < 0) {
    return num(env, -1);
  }
  uint8_t *prefix = NULL, *buf, *records;
  size_t prefix_len = 0, buf_len, records_len;
  napi_valuetype t;
  napi_typeof(env, argv[1], &t);
  if (t != napi_null && t != napi_undefined && !get_buffer(env, argv[1], &prefix, &prefix_len)) {
    return num(env, -1);
  }
  if (!get_buffer(env, argv[2], &buf, &buf_len) ||
      !get_buffer(env, argv[3], &records, &records_len) ||
      (size_t)count * RECORD_SIZE > records_len) {
    return num(env, -1);
  }
  napi_typedarray_type tt;
  size_t out_len;
  void *out_data;
  if (napi_get_typedarray_info(env, argv[5], &tt, &out_len, &out_data, NULL, NULL) != napi_ok ||
      tt != napi_int32_array || out_len < 4) {
    return num(env, -1);
  }
  int32_t *out = (int32_t *)out_data;
  size_t pairs_cap = (out_len - 4) / 2;

  /* A prefix and a buffer that fit an MTU are joined once here, so every
   * message carries one iovec (the kernel copies and walks one segment per
   * destination instead of two). Larger ones go as two iovecs. */
  uint8_t joined[JOIN_MAX];
  struct iovec iov[2];
  int iovcnt = 0;
  if (prefix != NULL && prefix_len > 0 && prefix_len + buf_len <= JOIN_MAX) {
    memcpy(joined, prefix, prefix_len);
    memcpy(joined + prefix_len, buf, buf_len);
    iov[0].iov_base = joined;
    iov[0].iov_len = prefix_len + buf_len;
    iovcnt = 1;
  } else {
    if (prefix != NULL && prefix_len > 0) {
      iov[iovcnt].iov_base = prefix;
      iov[iovcnt].iov_len = prefix_len;
      iovcnt++;
    }
    iov[iovcnt].iov_base = buf;
    iov[iovcnt].iov_len = buf_len;
    iovcnt++;
  }

  struct mmsghdr msgs[CHUNK];
  addr_t addrs[CHUNK];
  int done = 0;
  while (done < count) {
    int n = count - done < CHUNK ? count - done : CHUNK;
    for (int i = 0; i < n; i++) {
      struct msghdr *h = &msgs[i].msg_hdr;
      memset(h, 0, sizeof *h);
      h->msg_name = &addrs[i];
      h->msg_namelen = fill_addr(records + (size_t)(done + i) * RECORD_SIZE, &addrs[i]);
      h->msg_iov = iov;
      h->msg_iovlen = (size_t)iovcnt;
      msgs[i].msg_len = 0;
    }
    int off = 0;
    while (off < n) {
      int r = sendmmsg(fd, msgs + off, (unsigned)(n - off), MSG_DONTWAIT);
      out[2]++;
      if (r > 0) {
        out[1] += r;
        off += r;
        continue;
      }
      int e = r == 0 ? EIO : errno;
      if (e == EINTR) {
        continue;
      }
      if (e == EAGAIN || e == EWOULDBLOCK) {
        /* The kernel is full: the caller queues the rest (done + off onward). */
        return num(env, done + off);
      }
      /* This destination fails (EINVAL, EACCES, ENETUNREACH, EMSGSIZE...): count it, go on. */
      out[0]++;
      if ((size_t)out[3] < pairs_cap) {
        out[4 + 2 * out[3]] = done + off;
        out[5 + 2 * out[3]] = e;
        out[3]++;
      }
      off++;
    }
    done += n;
  }
  return num(env, done);
}

/* A worker thread that ends (or is terminated) without closing its send socket. */
static void close_on_teardown(void *arg) {
  close((int)(intptr_t)arg);
}

/* The one descriptor argument of sendSocketOpen / sendSocketClose, or -1. */
static int32_t fd_arg(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    return -1;
  }
  return fd;
}

/*
 * sendSocketOpen(fd) -> a new descriptor (non-blocking, close-on-exec) bound
 * to fd's address, that sends as fd does and receives nothing; or -errno.
 * fd keeps every datagram sent to the address (a BPF program of its
 * SO_REUSEPORT group picks it, index 0). The send buffer is copied from fd.
 * Closed by sendSocketClose, or when the thread's environment ends.
 */
static napi_value send_socket_open(napi_env env, napi_callback_info info) {
  int32_t fd = fd_arg(env, info);
  if (fd < 0) {
    return num(env, -EINVAL);
  }
  struct sockaddr_storage self;
  socklen_t self_len = sizeof self;
  if (getsockname(fd, (struct sockaddr *)&self, &self_len) != 0) {
    return num(env, -errno);
  }
  if (self.ss_family != AF_INET && self.ss_family != AF_INET6) {
    return num(env, -EAFNOSUPPORT);
  }
  int on = 1;
  int sndbuf = 0;
  socklen_t opt_len = sizeof sndbuf;
  if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &opt_len) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0) {
    return num(env, -errno);
  }
  int s = socket(self.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s < 0) {
    return num(env, -errno);
  }
  int e = 0;
  if (self.ss_family == AF_INET6) {
    int v6only = 0;
    opt_len = sizeof v6only;
    if (getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &opt_len) != 0 ||
        setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only) != 0) {
      e = errno;
    }
  }
  /* The kernel reports twice what was set; setting half gives the same size. */
  int half = sndbuf / 2;
  int tiny = 1;
  if (e == 0 && (setsockopt(s, SOL_SOCKET, SO_SNDBUF, &half, sizeof half) != 0 ||
                 setsockopt(s, SOL_SOCKET, SO_RCVBUF, &tiny, sizeof tiny) != 0 ||
                 setsockopt(s, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0 ||
                 bind(s, (struct sockaddr *)&self, self_len) != 0)) {
    e = errno;
  }
  if (e == 0) {
    /* Every datagram to the group goes to its socket 0: fd, the first bound.
     * (Until this is attached the kernel may hash a datagram to s; the caller
     * opens it before the port is announced to anyone.) */
    struct sock_filter code[] = {BPF_STMT(BPF_RET | BPF_K, 0)};
    struct sock_fprog prog = {1, code};
    if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof prog) != 0) {
      e = errno;
    }
  }
  if (e != 0 ||
      napi_add_env_cleanup_hook(env, close_on_teardown, (void *)(intptr_t)s) != napi_ok) {
    close(s);
    return num(env, e != 0 ? -e : -ENOMEM);
  }
  return num(env, s);
}

/* sendSocketClose(fd) -> 0 or -errno: closes a descriptor of sendSocketOpen. */
static napi_value send_socket_close(napi_env env, napi_callback_info info) {
  int32_t fd = fd_arg(env, info);
  if (fd < 0) {
    return num(env, -EINVAL);
  }
  napi_remove_env_cleanup_hook(env, close_on_teardown, (void *)(intptr_t)fd);
  return num(env, close(fd) == 0 ? 0 : -errno);
}

/* parseAddress(text, record: Buffer, offset) -> 4, 6 or 0 (not an IP literal). */
static napi_value parse_address(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3) {
    return num(env, 0);
  }
  char text[INET6_ADDRSTRLEN + 16];
  size_t len;
  if (napi_get_value_string_latin1(env, argv[0], text, sizeof text, &len) != napi_ok ||
      len >= sizeof text - 1) {
    return num(env, 0);
  }
  uint8_t *rec;
  size_t rec_len;
  int32_t at;
  if (!get_buffer(env, argv[1], &rec, &rec_len) ||
      napi_get_value_int32(env, argv[2], &at) != napi_ok || at < 0 ||
      (size_t)at + RECORD_SIZE > rec_len) {
    return num(env, 0);
  }
  rec += at;
  memset(rec, 0, RECORD_SIZE);
  if (inet_pton(AF_INET, text, rec + 8) == 1) {
    rec[0] = 4;
    return num(env, 4);
  }
  char *pct = strchr(text, '%');
  uint32_t scope = 0;
  if (pct != NULL) {
    *pct = '\0';
    scope = if_nametoindex(pct + 1);
    if (scope == 0) {
      char *end;
      unsigned long s = strtoul(pct + 1, &end, 10);
      scope = *end == '\0' ? (uint32_t)s : 0;
    }
  }
  if (inet_pton(AF_INET6, text, rec + 8) == 1) {
    rec[0] = 6;
    memcpy(rec + 4, &scope, 4);
    return num(env, 6);
  }
  return num(env, 0);
}

/* ── receive ────────────────────────────────────────────────────────────── */

/*
 * Metadata of ring slot i, META_SIZE bytes at meta + i * META_SIZE, as int32:
 *   [0] datagram length (bytes in the slot)
 *   [1] source port
 *   [2] family: 4 (IPv4), 46 (IPv4-mapped on an IPv6 socket), 6 (IPv6)
 *   [3] IPv4 address as a big-endian number (4 and 46)
 *   [4] text length of an IPv6 source (6), text at byte META_TEXT
 *   [5] 1 if the datagram was truncated (larger than a slot)
 */
#define META_SIZE 128
#define META_TEXT 32
/*
 * recvmmsg rounds per wakeup before the loop serves other handles. One, as
 * libuv (which reads at most 32 datagrams per wakeup): a batch's fan-out
 * leaves before more is read, so output bursts are no larger than dgram's.
 */
#define MAX_ROUNDS 1
/* counters (Float64Array): [0] recvmmsg calls, [1] truncated, [2] datagrams. */
#define COUNTERS 3

typedef struct {
  uv_poll_t poll;
  napi_env env;
  int fd;
  int closing;
  int teardown;
  uint32_t slots;
  uint32_t slot_size;
  uint8_t *ring;
  uint8_t *meta;
  double *counters;
  napi_ref cb_ref;
  napi_ref ring_ref;
  napi_ref meta_ref;
  napi_ref counters_ref;
  napi_async_context actx;
  napi_async_cleanup_hook_handle hook;
  struct mmsghdr *msgs;
  struct iovec *iov;
  struct sockaddr_storage *addrs;
  /* Headers the kernel wrote in the last recvmmsg (the first `dirty`): reset before the next. */
  uint32_t dirty;
} receiver_t;

static void receiver_free(receiver_t *r) {
  free(r->msgs);
  free(r->iov);
  free(r->addrs);
  free(r);
}

static void on_closed(uv_handle_t *h) {
  receiver_t *r = (receiver_t *)h->data;
  napi_env env = r->env;
  close(r->fd);
  if (!r->teardown) {
    napi_delete_reference(env, r->cb_ref);
    napi_delete_reference(env, r->ring_ref);
    napi_delete_reference(env, r->meta_ref);
    napi_delete_reference(env, r->counters_ref);
    napi_async_destroy(env, r->actx);
  }
  if (r->hook != NULL) {
    napi_remove_async_cleanup_hook(r->hook);
  }
  receiver_free(r);
}

static void receiver_close(receiver_t *r) {
  if (r->closing) {
    return;
  }
  r->closing = 1;
  uv_poll_stop(&r->poll);
  uv_close((uv_handle_t *)&r->poll, on_closed);
}

/* The environment (main thread or a worker) is going away with the receiver open. */
static void on_teardown(napi_async_cleanup_hook_handle handle, void *arg) {
  (void)handle;
  receiver_t *r = (receiver_t *)arg;
  r->teardown = 1;
  receiver_close(r);
}

/* Calls JS with n (datagrams in the ring) or -errno; an exception goes to 'uncaughtException'. */
static void deliver(receiver_t *r, int n) {
  napi_env env = r->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) {
    return;
  }
  napi_value cb, global, arg, result;
  if (napi_get_reference_value(env, r->cb_ref, &cb) == napi_ok && cb != NULL &&
      napi_get_global(env, &global) == napi_ok && napi_create_int32(env, n, &arg) == napi_ok) {
    napi_status s = napi_make_callback(env, r->actx, global, cb, 1, &arg, &result);
    if (s == napi_pending_exception) {
      napi_value err;
      if (napi_get_and_clear_last_exception(env, &err) == napi_ok) {
        napi_fatal_exception(env, err);
      }
    }
  }
  napi_close_handle_scope(env, scope);
}

static void write_meta(receiver_t *r, uint32_t i) {
  int32_t *m = (int32_t *)(r->meta + (size_t)i * META_SIZE);
  struct msghdr *h = &r->msgs[i].msg_hdr;
  const struct sockaddr_storage *ss = &r->addrs[i];
  m[0] = (int32_t)r->msgs[i].msg_len;
  m[5] = (h->msg_flags & MSG_TRUNC) != 0;
  if (m[5]) {
    r->counters[1]++;
  }
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    m[1] = ntohs(a->sin_port);
    m[2] = 4;
    m[3] = (int32_t)ntohl(a->sin_addr.s_addr);
    return;
  }
  const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
  m[1] = ntohs(a->sin6_port);
  if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
    uint32_t v4;
    memcpy(&v4, a->sin6_addr.s6_addr + 12, 4);
    m[2] = 46;
    m[3] = (int32_t)ntohl(v4);
    return;
  }
  /* As Node formats it (uv_ip6_name, then %interface when scoped). */
  char *text = (char *)(r->meta + (size_t)i * META_SIZE + META_TEXT);
  size_t cap = META_SIZE - META_TEXT;
  m[2] = 6;
  if (inet_ntop(AF_INET6, &a->sin6_addr, text, (socklen_t)cap) == NULL) {
    m[4] = 0;
    return;
  }
  size_t len = strlen(text);
  if (a->sin6_scope_id != 0 && len + 1 + IF_NAMESIZE < cap) {
    char name[IF_NAMESIZE];
    text[len] = '%';
    if (if_indextoname(a->sin6_scope_id, name) != NULL) {
      memcpy(text + len + 1, name, strlen(name) + 1);
    } else {
      snprintf(text + len + 1, cap - len - 1, "%u", a->sin6_scope_id);
    }
    len = strlen(text);
  }
  m[4] = (int32_t)len;
}

/* Header i as recvmmsg takes it: the kernel writes msg_namelen, msg_flags and msg_len back. */
static void reset_header(receiver_t *r, uint32_t i) {
  struct msghdr *mh = &r->msgs[i].msg_hdr;
  mh->msg_name = &r->addrs[i];
  mh->msg_namelen = sizeof r->addrs[i];
  mh->msg_iov = &r->iov[i];
  mh->msg_iovlen = 1;
  mh->msg_control = NULL;
  mh->msg_controllen = 0;
  mh->msg_flags = 0;
  r->msgs[i].msg_len = 0;
}

static void on_readable(uv_poll_t *h, int status, int events) {
  (void)events;
  receiver_t *r = (receiver_t *)h->data;
  if (r->closing) {
    return;
  }
  if (status < 0) {
    deliver(r, status);
    return;
  }
  for (int round = 0; round < MAX_ROUNDS && !r->closing; round++) {
    /* Only what the kernel wrote last time: one batch is 1-2 datagrams, the headers 32. */
    for (uint32_t i = 0; i < r->dirty; i++) {
      reset_header(r, i);
    }
    r->dirty = 0;
    int n = recvmmsg(r->fd, r->msgs, r->slots, MSG_DONTWAIT, NULL);
    r->counters[0]++;
    if (n < 0) {
      int e = errno;
      if (e == EAGAIN || e == EWOULDBLOCK) {
        return;
      }
      r->dirty = r->slots; /* not expected to write any, but reset all to be sure */
      if (e == EINTR) {
        continue;
      }
      /* As dgram: a receive error is reported (its 'error' event), reading goes on. */
      deliver(r, -e);
      return;
    }
    if (n == 0) {
      return;
    }
    r->dirty = (uint32_t)n;
    for (int i = 0; i < n; i++) {
      write_meta(r, (uint32_t)i);
    }
    r->counters[2] += n;
    deliver(r, n);
    if ((uint32_t)n < r->slots) {
      return;
    }
  }
}

static int get_bytes(napi_env env, napi_value v, uint8_t **data, size_t *len) {
  napi_typedarray_type tt;
  size_t n;
  void *p;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, v, &tt, &n, &p, &ab, &off) != napi_ok) {
    return 0;
  }
  *data = (uint8_t *)p;
  switch (tt) {
    case napi_float64_array:
      *len = n * 8;
      break;
    case napi_int32_array:
    case napi_uint32_array:
      *len = n * 4;
      break;
    default:
      *len = n;
  }
  return 1;
}

/*
 * recvStart(fd, slots, slotSize, ring: Buffer, meta: Buffer, counters: Float64Array, onBatch)
 *   -> an external (the receiver) or a number: -errno (dup, poll) or -1 (bad arguments).
 * onBatch(n): n > 0 datagrams are in ring slots [0, n) with their metadata; n < 0 is -errno
 * of a receive error. The ring is rewritten at the next batch: JS copies what it keeps.
 */
static napi_value recv_start(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 7) {
    return num(env, -1);
  }
  int32_t fd, slots, slot_size;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
      napi_get_value_int32(env, argv[1], &slots) != napi_ok ||
      napi_get_value_int32(env, argv[2], &slot_size) != napi_ok || fd < 0 || slots < 1 ||
      slots > 1024 || slot_size < 1) {
    return num(env, -1);
  }
  uint8_t *ring, *meta, *counters;
  size_t ring_len, meta_len, counters_len;
  napi_valuetype t;
  if (!get_bytes(env, argv[3], &ring, &ring_len) || !get_bytes(env, argv[4], &meta, &meta_len) ||
      !get_bytes(env, argv[5], &counters, &counters_len) ||
      ring_len < (size_t)slots * (size_t)slot_size || meta_len < (size_t)slots * META_SIZE ||
      counters_len < COUNTERS * sizeof(double) || ((uintptr_t)meta & 3) != 0 ||
      ((uintptr_t)counters & 7) != 0 || napi_typeof(env, argv[6], &t) != napi_ok ||
      t != napi_function) {
    return num(env, -1);
  }
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) {
    return num(env, -1);
  }
  receiver_t *r = (receiver_t *)calloc(1, sizeof *r);
  if (r == NULL) {
    return num(env, -ENOMEM);
  }
  r->msgs = (struct mmsghdr *)calloc((size_t)slots, sizeof *r->msgs);
  r->iov = (struct iovec *)calloc((size_t)slots, sizeof *r->iov);
  r->addrs = (struct sockaddr_storage *)calloc((size_t)slots, sizeof *r->addrs);
  if (r->msgs == NULL || r->iov == NULL || r->addrs == NULL) {
    receiver_free(r);
    return num(env, -ENOMEM);
  }
  r->env = env;
  r->slots = (uint32_t)slots;
  r->slot_size = (uint32_t)slot_size;
  r->ring = ring;
  r->meta = meta;
  r->counters = (double *)counters;
  for (int32_t i = 0; i < slots; i++) {
    r->iov[i].iov_base = ring + (size_t)i * (size_t)slot_size;
    r->iov[i].iov_len = (size_t)slot_size;
    reset_header(r, (uint32_t)i);
  }
  r->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (r->fd < 0) {
    int e = errno;
    receiver_free(r);
    return num(env, -e);
  }
  int rc = uv_poll_init_socket(loop, &r->poll, r->fd);
  if (rc < 0) {
    close(r->fd);
    receiver_free(r);
    return num(env, rc);
  }
  r->poll.data = r;
  napi_value name;
  napi_create_string_utf8(env, "wzp_udp.recv", NAPI_AUTO_LENGTH, &name);
  if (napi_async_init(env, NULL, name, &r->actx) != napi_ok ||
      napi_create_reference(env, argv[6], 1, &r->cb_ref) != napi_ok ||
      napi_create_reference(env, argv[3], 1, &r->ring_ref) != napi_ok ||
      napi_create_reference(env, argv[4], 1, &r->meta_ref) != napi_ok ||
      napi_create_reference(env, argv[5], 1, &r->counters_ref) != napi_ok ||
      napi_add_async_cleanup_hook(env, on_teardown, r, &r->hook) != napi_ok) {
    /* Not reached in practice; the handle is closed without the refs. */
    r->teardown = 1;
    r->closing = 1;
    uv_close((uv_handle_t *)&r->poll, on_closed);
    return num(env, -1);
  }
  rc = uv_poll_start(&r->poll, UV_READABLE, on_readable);
  if (rc < 0) {
    receiver_close(r);
    return num(env, rc);
  }
  napi_value ext;
  napi_create_external(env, r, NULL, NULL, &ext);
  return ext;
}

/*
 * recvClose(receiver): stops reading; the dup'd descriptor and the receiver are released
 * once libuv has closed the handle. Call it once (JS guards): the receiver is freed after.
 */
static napi_value recv_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  void *p;
  napi_valuetype t;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_typeof(env, argv[0], &t) != napi_ok || t != napi_external ||
      napi_get_value_external(env, argv[0], &p) != napi_ok) {
    return num(env, -1);
  }
  receiver_close((receiver_t *)p);
  return num(env, 0);
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "sendMany", NAPI_AUTO_LENGTH, send_many, NULL, &fn);
  napi_set_named_property(env, exports, "sendMany", fn);
  napi_create_function(env, "parseAddress", NAPI_AUTO_LENGTH, parse_address, NULL, &fn);
  napi_set_named_property(env, exports, "parseAddress", fn);
  napi_value v;
  napi_create_int32(env, RECORD_SIZE, &v);
  napi_set_named_property(env, exports, "RECORD_SIZE", v);
  napi_create_function(env, "recvStart", NAPI_AUTO_LENGTH, recv_start, NULL, &fn);
  napi_set_named_property(env, exports, "recvStart", fn);
  napi_create_function(env, "recvClose", NAPI_AUTO_LENGTH, recv_close, NULL, &fn);
  napi_set_named_property(env, exports, "recvClose", fn);
  napi_create_function(env, "sendSocketOpen", NAPI_AUTO_LENGTH, send_socket_open, NULL, &fn);
  napi_set_named_property(env, exports, "sendSocketOpen", fn);
  napi_create_function(env, "sendSocketClose", NAPI_AUTO_LENGTH, send_socket_close, NULL, &fn);
  napi_set_named_property(env, exports, "sendSocketClose", fn);
  napi_create_int32(env, META_SIZE, &v);
  napi_set_named_property(env, exports, "META_SIZE", v);
  napi_create_int32(env, META_TEXT, &v);
  napi_set_named_property(env, exports, "META_TEXT", v);
  napi_create_int32(env, 3, &v);
  napi_set_named_property(env, exports, "ABI", v);
  return exports;
}
