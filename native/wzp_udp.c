/*
 * wzp_udp: batched UDP sends for the relay's media socket (Linux sendmmsg).
 *
 * The socket stays node:dgram's: JS passes its file descriptor (already
 * non-blocking, bound, owned and closed by libuv). One call sends one
 * datagram, made of an optional shared prefix and a buffer, to N
 * destinations in as few sendmmsg(2) calls as the kernel allows (normally
 * one per 256 destinations).
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
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <node_api.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define RECORD_SIZE 32
#define CHUNK 256

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

  struct iovec iov[2];
  int iovcnt = 0;
  if (prefix != NULL && prefix_len > 0) {
    iov[iovcnt].iov_base = prefix;
    iov[iovcnt].iov_len = prefix_len;
    iovcnt++;
  }
  iov[iovcnt].iov_base = buf;
  iov[iovcnt].iov_len = buf_len;
  iovcnt++;

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

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "sendMany", NAPI_AUTO_LENGTH, send_many, NULL, &fn);
  napi_set_named_property(env, exports, "sendMany", fn);
  napi_create_function(env, "parseAddress", NAPI_AUTO_LENGTH, parse_address, NULL, &fn);
  napi_set_named_property(env, exports, "parseAddress", fn);
  napi_value v;
  napi_create_int32(env, RECORD_SIZE, &v);
  napi_set_named_property(env, exports, "RECORD_SIZE", v);
  napi_create_int32(env, 1, &v);
  napi_set_named_property(env, exports, "ABI", v);
  return exports;
}
