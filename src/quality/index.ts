/**
 * Quality: relay-measured stream statistics, tier classification, the
 * per-participant tier controller (hysteresis, probing) and the room tier.
 * Pure logic over explicit `nowMs`; no I/O, no timers.
 */
export * from './controller.js';
export * from './room-tier.js';
export * from './stream-stats.js';
export * from './tiers.js';
