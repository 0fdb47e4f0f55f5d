// The rooms of bench/forwarding's raw protocol, shared by its Node relays
// (raw-relay.mjs, raw-relay-native.mjs); bench/forwarding/rooms.h is the C side.

/**
 * Applies a registration, 0xFF room u16 slot u16, of the source port:address
 * to `rooms` (room id → members [{ slot, port, address }]); a slot registered
 * again moves. Returns the room's members and the port the slot had before
 * (null for a new member), for the caller's own index by source port.
 */
export function registerMember(rooms, msg, port, address) {
  const room = (msg[1] << 8) | msg[2];
  const slot = (msg[3] << 8) | msg[4];
  let members = rooms.get(room);
  if (members === undefined) {
    members = [];
    rooms.set(room, members);
  }
  const old = members.find((m) => m.slot === slot);
  let movedFrom = null;
  if (old !== undefined) {
    movedFrom = old.port;
    old.port = port;
    old.address = address;
  } else {
    members.push({ slot, port, address });
  }
  return { members, movedFrom };
}
