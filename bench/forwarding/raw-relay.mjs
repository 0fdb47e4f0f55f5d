// The in-language baseline of bench/forwarding: a minimal node:dgram fan-out
// relay with no protocol logic. 0xFF room u16 slot u16 registers the source
// as member `slot` of a room (a slot registered again moves; answered 0xFE);
// any other datagram goes unchanged to every other member of the sender's
// room. Prints its port on stdout.
import { createSocket } from 'node:dgram';
import { registerMember } from './raw-rooms.mjs';

const bufferBytes = Number(process.argv[3] ?? 512 << 10);
const sock = createSocket({
  type: 'udp4',
  recvBufferSize: bufferBytes,
  sendBufferSize: bufferBytes,
});
/** room id → members [{ port, address }] */
const rooms = new Map();
/** source port → member list of its room */
const byPort = new Map();
const ACK = Buffer.from([0xfe]);

sock.on('message', (msg, rinfo) => {
  if (msg.length === 5 && msg[0] === 0xff) {
    const { members, movedFrom } = registerMember(rooms, msg, rinfo.port, rinfo.address);
    if (movedFrom !== null) {
      byPort.delete(movedFrom);
    }
    byPort.set(rinfo.port, members);
    sock.send(ACK, rinfo.port, rinfo.address);
    return;
  }
  const members = byPort.get(rinfo.port);
  if (members === undefined) {
    return;
  }
  for (let i = 0; i < members.length; i++) {
    const m = members[i];
    if (m.port !== rinfo.port) {
      sock.send(msg, m.port, m.address);
    }
  }
});
sock.bind(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  process.stdout.write(`${sock.address().port}\n`);
});
