export * from './directory.js';
export * from './fleet.js';
export * from './records.js';
export * from './redis-directory.js';
