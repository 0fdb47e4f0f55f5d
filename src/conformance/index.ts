export * from './adapter.js';
export * from './attacks.js';
export * from './native-codec.js';
export * from './relay-scenarios.js';
export * from './report.js';
export * from './vectors.js';
