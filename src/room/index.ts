export * from './room-manager.js';
export * from './rw-lock.js';
