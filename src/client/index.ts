export * from './client.js';
export * from './hub.js';
