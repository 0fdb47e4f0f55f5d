export * from './codec.js';
export * from './identity.js';
export * from './messages.js';
export * from './profiles.js';
export * from './scan.js';
