/**
 * The public API of the `wzp-relay` package: the client library, the WZP v2
 * wire codec, the stable error codes, the signalling message types and
 * codec, and the conformance suite (vector runner, adapter contract, relay
 * scenarios). The relay itself is run with the `wzp relay` command.
 */
export * from './client/index.js';
export * from './conformance/index.js';
export * from './errors/index.js';
export * from './signal/index.js';
export * from './wire/index.js';
