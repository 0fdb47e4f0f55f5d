export * from './client.js';
export * from './hub.js';
export * from './loss-recovery.js';
export * from './lossy-proxy.js';
export * from './media-source.js';
export * from './receive-stats.js';
