/*
 * Stall accounting shared by the C tools of bench/forwarding (loadgen.c, hostgap.c): a thread
 * that never blocks notes the gap between two clock readings; a gap over 1 ms is time it did
 * not run (another task had its CPU, or the hypervisor did not run the vCPU).
 */
#ifndef WZP_BENCH_STALLS_H
#define WZP_BENCH_STALLS_H
#include <stdint.h>

#define STALL_NS 1000000ull

struct stalls {
  uint64_t count;  /* gaps over STALL_NS */
  uint64_t lost_ns; /* their sum */
  uint64_t max_gap_ns;
};

static inline void stalls_note(struct stalls *s, uint64_t gap) {
  if (gap > s->max_gap_ns) s->max_gap_ns = gap;
  if (gap > STALL_NS) {
    s->count++;
    s->lost_ns += gap;
  }
}
#endif
