/*
 * Wake-up cost probe of bench/forwarding: what one sleep and wake-up of a thread costs in
 * CPU on this host, the floor under every relay's cost per receive at low load. A thread
 * pinned to CPU 0 sleeps in epoll_wait on an eventfd; a thread on CPU 1 writes to it every
 * GAP_US microseconds (busy-waiting for the moment, so it never sleeps itself), WAKES times.
 * The sleeper's own CPU time (getrusage RUSAGE_THREAD) divided by its wake-ups is printed.
 * It does nothing else in user space, so the whole figure is the kernel's (and, on a virtual
 * machine, the hypervisor's exits charged to the guest).
 *
 * usage: wakecost GAP_US WAKES
 * prints one JSON line: gap_us, wakes, cpu_us_per_wake.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static int efd;
static long gap_us, wakes;
static volatile int done;

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static void pin(int cpu) {
  cpu_set_t s;
  CPU_ZERO(&s);
  CPU_SET(cpu, &s);
  pthread_setaffinity_np(pthread_self(), sizeof s, &s);
}

static void *waker(void *arg) {
  (void)arg;
  pin(1);
  uint64_t one = 1;
  double t = now_us();
  for (long i = 0; i < wakes; i++) {
    t += (double)gap_us;
    while (now_us() < t) {
    }
    if (write(efd, &one, 8) != 8) abort();
  }
  done = 1;
  if (write(efd, &one, 8) != 8) abort();
  return NULL;
}

static double rusage_us(void) {
  struct rusage r;
  getrusage(RUSAGE_THREAD, &r);
  return (double)(r.ru_utime.tv_sec + r.ru_stime.tv_sec) * 1e6 +
         (double)(r.ru_utime.tv_usec + r.ru_stime.tv_usec);
}

int main(int argc, char **argv) {
  gap_us = argc > 1 ? atol(argv[1]) : 100;
  wakes = argc > 2 ? atol(argv[2]) : 5000;
  pin(0);
  efd = eventfd(0, EFD_NONBLOCK);
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN};
  if (efd < 0 || ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev) != 0) {
    perror("wakecost");
    return 1;
  }
  pthread_t th;
  double c0 = rusage_us();
  pthread_create(&th, NULL, waker, NULL);
  long woken = 0;
  uint64_t v;
  while (!done) {
    struct epoll_event out;
    if (epoll_wait(ep, &out, 1, -1) > 0 && read(efd, &v, 8) == 8) woken++;
  }
  double c1 = rusage_us();
  pthread_join(th, NULL);
  printf("{\"gap_us\":%ld,\"wakes\":%ld,\"cpu_us_per_wake\":%.2f}\n", gap_us, woken,
         woken > 0 ? (c1 - c0) / (double)woken : 0.0);
  return 0;
}
