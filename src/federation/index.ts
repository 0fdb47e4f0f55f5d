export * from './federation.js';
export * from './handshake.js';
export * from './media.js';
export * from './mirror.js';
export * from './peers.js';
export * from './presence.js';
export * from './replay-window.js';
export * from './worker-protocol.js';
