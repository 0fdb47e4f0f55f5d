// bench/forwarding's floor for JavaScript on the native path: raw-relay.mjs's
// protocol (0xFF room u16 slot u16 registers; anything else goes to every
// other member of the sender's room) on the relay's own add-on
// (native/wzp_udp.c): recvmmsg into a ring, one JavaScript call per batch,
// one sendmmsg per input over destination records built at registration.
// Per input datagram the JavaScript is a Map lookup and one add-on call, so
// wzp-native minus this is the media engine's cost, and this minus c-raw is
// what Node, libuv and N-API cost on their own. Prints its port on stdout.
//
//   node raw-relay-native.mjs PORT BUFFER_BYTES            JavaScript per batch
//   node raw-relay-native.mjs PORT BUFFER_BYTES c ADDON    no JavaScript at all:
//     ADDON is bench/forwarding/nativefwd.c built, relay.c's loop on Node's event loop
import { createSocket } from 'node:dgram';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { registerMember } from './raw-rooms.mjs';

const ADDON = fileURLToPath(new URL('../../native/build/Release/wzp_udp.node', import.meta.url));
const addon = createRequire(import.meta.url)(ADDON);
const bufferBytes = Number(process.argv[3] ?? 512 << 10);
const SLOTS = 32;
const SLOT_SIZE = 65536;
const sock = createSocket({
  type: 'udp4',
  recvBufferSize: bufferBytes,
  sendBufferSize: bufferBytes,
});
const ACK = Buffer.from([0xfe]);
const REC = addon.RECORD_SIZE;

/** room id → members [{ slot, port, address }] */
const rooms = new Map();
/** source port → { records: Buffer, n } (every other member of its room) */
const routes = new Map();

function rebuild(members) {
  for (const m of members) {
    const others = members.filter((o) => o !== m);
    const records = Buffer.alloc(Math.max(1, others.length) * REC);
    others.forEach((o, i) => {
      addon.parseAddress(o.address, records, i * REC);
      records[i * REC + 2] = o.port >>> 8;
      records[i * REC + 3] = o.port & 0xff;
    });
    routes.set(m.port, { records, n: others.length });
  }
}

function register(msg, port, address) {
  const { members, movedFrom } = registerMember(rooms, msg, port, address);
  if (movedFrom !== null) {
    routes.delete(movedFrom);
  }
  rebuild(members);
  sock.send(ACK, port, address);
}

const ring = Buffer.allocUnsafeSlow(SLOTS * SLOT_SIZE);
const meta = Buffer.alloc(SLOTS * addon.META_SIZE);
const words = new Int32Array(meta.buffer, meta.byteOffset, meta.length >> 2);
const mw = addon.META_SIZE >> 2;
const counters = new Float64Array(3);
const out = new Int32Array(4 + 2 * 64);
/** Cached views: slot → length → Buffer (media datagrams have a few lengths). */
const views = Array.from({ length: SLOTS }, () => new Map());
let fd = -1;

function onBatch(n) {
  for (let i = 0; i < n; i++) {
    const m = i * mw;
    const len = words[m];
    const port = words[m + 1];
    const cache = views[i];
    let v = cache.get(len);
    if (v === undefined) {
      v = ring.subarray(i * SLOT_SIZE, i * SLOT_SIZE + len);
      cache.set(len, v);
    }
    if (len === 5 && v[0] === 0xff) {
      const a = words[m + 3];
      register(v, port, `${a >>> 24}.${(a >>> 16) & 0xff}.${(a >>> 8) & 0xff}.${a & 0xff}`);
      continue;
    }
    const r = routes.get(port);
    if (r !== undefined && r.n > 0) {
      out[0] = 0;
      out[3] = 0;
      // EAGAIN (handled < n) drops the rest, as the C relay's sendto does.
      addon.sendMany(fd, null, v, r.records, r.n, out);
    }
  }
}

const inC = process.argv[4] === 'c';
sock.bind(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  const sym = Object.getOwnPropertySymbols(sock).find((s) => s.description === 'state symbol');
  const handle = sock[sym].handle;
  fd = handle.fd;
  const r = inC
    ? createRequire(import.meta.url)(process.argv[5]).start(fd)
    : addon.recvStart(fd, SLOTS, SLOT_SIZE, ring, meta, counters, onBatch);
  if (typeof r === 'number' && (!inC || r !== 0)) {
    process.stderr.write(`start failed: ${r}\n`);
    process.exit(1);
  }
  handle.recvStop();
  process.stdout.write(`${sock.address().port}\n`);
});
