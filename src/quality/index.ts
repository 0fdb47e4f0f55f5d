export * from './controller.js';
export * from './room-tier.js';
export * from './stream-stats.js';
export * from './tiers.js';
