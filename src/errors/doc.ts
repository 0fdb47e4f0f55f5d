import { ERROR_CODES } from './codes.js';

const GROUPS: readonly [prefix: string, title: string][] = [
  ['WIRE_', 'Wire codec'],
  ['SIGNAL_', 'Signalling'],
  ['AUTH_', 'Handshake and auth'],
  ['BAD_', 'Handshake and auth'],
  ['PROTOCOL_', 'Handshake and auth'],
  ['NO_', 'Handshake and auth'],
  ['ROOM_', 'Rooms and sessions'],
  ['SESSION_', 'Rooms and sessions'],
  ['RELAY_', 'Rooms and sessions'],
  ['CONFIG_', 'Configuration'],
  ['TRANSPORT_', 'Transport'],
  ['UDP_IO_', 'Transport'],
  ['FEDERATION_', 'Federation'],
];

/** Renders docs/errors.md from the code table (kept in sync by a test). */
export function renderErrorsDoc(): string {
  const sections = new Map<string, string[]>();
  for (const [code, description] of Object.entries(ERROR_CODES)) {
    const title = GROUPS.find(([prefix]) => code.startsWith(prefix))?.[1] ?? 'Other';
    const rows = sections.get(title) ?? [];
    rows.push(`| \`${code}\` | ${description} |`);
    sections.set(title, rows);
  }
  const out = [
    '# Error codes',
    '',
    'Every error wzp-relay reports carries a stable `code`. Match on the code, not on the message.',
    'Programs get them as `WzpError.code`; the relay sends them to clients in',
    '`Error { code, message }` signalling messages (protocol/BINDING.md); `wzp` commands print',
    '`{"error":{"code","message"}}` and exit with status 2 on invalid input.',
    '',
    'This file is generated from `src/errors/codes.ts` (`UPDATE_DOCS=1 npx vitest run src/errors`).',
    '',
  ];
  for (const [title, rows] of sections) {
    out.push(`## ${title}`, '', '| code | meaning |', '| --- | --- |', ...rows, '');
  }
  return out.join('\n');
}
