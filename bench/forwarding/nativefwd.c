/*
 * A diagnostic of bench/forwarding: relay.c's protocol (0xFF room u16 slot
 * u16 registers; anything else goes unchanged to every other member of the
 * sender's room) run inside a Node process, from a libuv poll handle on
 * Node's own event loop, with no JavaScript per datagram or batch: each
 * wake-up is one recvmmsg of up to 32 datagrams and one sendmmsg per input
 * datagram. Between node-raw-native (the same add-on I/O with one JavaScript
 * call per batch) and c-raw (a blocking C loop), it shows what libuv and
 * Node's loop cost per wake-up on their own.
 *
 * start(fd) -> 0 or -errno (it polls a dup of fd). Built by bench/forwarding.mjs with cc against the
 * Node headers; the relay's own add-on is native/wzp_udp.c.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <node_api.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "rooms.h"

#define SLOTS 32
#define SLOT_SIZE 2048

static uv_poll_t poll_handle;
static int sock_fd = -1;
static unsigned char ring[SLOTS][SLOT_SIZE];
static struct sockaddr_in from[SLOTS];
static struct iovec iov[SLOTS];
static struct mmsghdr in[SLOTS];
static struct mmsghdr out[MAX_MEMBERS];
static struct iovec out_iov;

static void fan_out(const unsigned char *buf, size_t n, const struct sockaddr_in *src) {
  if (rooms_register(buf, n, src)) {
    unsigned char ack = 0xfe;
    sendto(sock_fd, &ack, 1, 0, (const struct sockaddr *)src, sizeof *src);
    return;
  }
  struct room *rm = rooms_of(src);
  if (rm == NULL) {
    return;
  }
  out_iov.iov_base = (void *)buf;
  out_iov.iov_len = n;
  unsigned m = 0;
  for (int k = 0; k < rm->n; k++) {
    if (rm->addr[k].sin_port != src->sin_port) {
      struct msghdr *h = &out[m].msg_hdr;
      h->msg_name = &rm->addr[k];
      h->msg_namelen = sizeof rm->addr[k];
      h->msg_iov = &out_iov;
      h->msg_iovlen = 1;
      m++;
    }
  }
  /* As relay.c's sendto: what the kernel does not take (EAGAIN) is dropped. */
  if (m > 0) {
    sendmmsg(sock_fd, out, m, MSG_DONTWAIT);
  }
}

static void on_readable(uv_poll_t *h, int status, int events) {
  (void)h;
  (void)events;
  if (status < 0) {
    return;
  }
  for (int i = 0; i < SLOTS; i++) {
    in[i].msg_hdr.msg_name = &from[i];
    in[i].msg_hdr.msg_namelen = sizeof from[i];
    in[i].msg_hdr.msg_iov = &iov[i];
    in[i].msg_hdr.msg_iovlen = 1;
  }
  int n = recvmmsg(sock_fd, in, SLOTS, MSG_DONTWAIT, NULL);
  for (int i = 0; i < n; i++) {
    if (in[i].msg_len > 0) {
      fan_out(ring[i], in[i].msg_len, &from[i]);
    }
  }
}

static napi_value start(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result;
  int32_t fd = -1;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0 || sock_fd >= 0) {
    napi_create_int32(env, -EINVAL, &result);
    return result;
  }
  uv_loop_t *loop;
  napi_get_uv_event_loop(env, &loop);
  rooms_init();
  for (int i = 0; i < SLOTS; i++) {
    iov[i].iov_base = ring[i];
    iov[i].iov_len = SLOT_SIZE;
  }
  /* dgram's handle has fd in libuv's epoll set already: poll a duplicate (as wzp_udp.c does). */
  sock_fd = dup(fd);
  if (sock_fd < 0) {
    napi_create_int32(env, -errno, &result);
    return result;
  }
  int rc = uv_poll_init_socket(loop, &poll_handle, sock_fd);
  if (rc == 0) {
    rc = uv_poll_start(&poll_handle, UV_READABLE, on_readable);
  }
  napi_create_int32(env, rc, &result);
  return result;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "start", NAPI_AUTO_LENGTH, start, NULL, &fn);
  napi_set_named_property(env, exports, "start", fn);
  return exports;
}
