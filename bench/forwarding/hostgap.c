/*
 * Host steadiness probe of bench/forwarding: a busy loop reading CLOCK_MONOTONIC for SECONDS;
 * every gap between two readings over 1 ms is time this thread did not run although it never
 * blocked (another task on its CPU, or on a virtual machine the hypervisor not running the vCPU,
 * which the guest's scheduler does not see). Run pinned to one CPU with nothing else to do.
 *
 * usage: hostgap SECONDS
 * prints one JSON line: seconds, gaps (over 1 ms), lost_ms (their sum), max_gap_us.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "stalls.h"

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv) {
  double seconds = argc > 1 ? atof(argv[1]) : 1.0;
  uint64_t start = now_ns(), end = start + (uint64_t)(seconds * 1e9), prev = start;
  struct stalls st = {0, 0, 0};
  for (;;) {
    uint64_t t = now_ns();
    if (t >= end) break;
    stalls_note(&st, t - prev);
    prev = t;
  }
  printf("{\"seconds\":%.3f,\"gaps\":%llu,\"lost_ms\":%.3f,\"max_gap_us\":%llu}\n", seconds,
         (unsigned long long)st.count, (double)st.lost_ns / 1e6,
         (unsigned long long)(st.max_gap_ns / 1000));
  return 0;
}
