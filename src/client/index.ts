export * from './client.js';
export * from './hub.js';
export * from './media-source.js';
