/*
 * idlespin: a busy loop at SCHED_IDLE priority (bench:forwarding's
 * BENCH_IDLE_SPIN diagnostic). Pinned to the relays' CPU, it keeps that vCPU
 * from halting between datagrams, so a relay's wake-up does not wait for the
 * hypervisor to run the vCPU again. Any runnable thread preempts it at once.
 * It runs until killed and touches one counter, so it leaves the caches alone.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>

int main(void) {
  struct sched_param p = {.sched_priority = 0};
  if (sched_setscheduler(0, SCHED_IDLE, &p) != 0) {
    perror("sched_setscheduler(SCHED_IDLE)");
    return 1;
  }
  volatile unsigned long n = 0;
  for (;;) {
    n++;
  }
}
