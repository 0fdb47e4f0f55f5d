/**
 * The WZP v2 wire codec. Pure functions over bytes: no I/O, no timers, no
 * dependencies beyond Node's Buffer and crypto hash.
 *
 * Naming: `read*`/`check*` never throw and return a {@link WireResult}
 * (null = ok) for the hot path; `decode*`/`encode*` throw {@link WireError}
 * for tools and tests; `*Into` writes into a caller's buffer; `*Unchecked`
 * writes values the caller guarantees valid.
 */
export * from './bind.js';
export * from './codec-table.js';
export * from './compact.js';
export * from './constants.js';
export * from './datagram.js';
export * from './error.js';
export * from './federation.js';
export * from './federation-frame.js';
export * from './header.js';
export * from './hex.js';
export * from './json.js';
export * from './mini.js';
export * from './packet.js';
export * from './quality-report.js';
export * from './trunk.js';
