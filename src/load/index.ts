export * from './load.js';
export * from './worker.js';
