#!/usr/bin/env python3
"""Sends UDP datagrams with a forged source address through a raw socket.

Used by test/hostile-media.test.ts to replay issue 12's attack 4 (a BIND
from a spoofed source) against a relay process. Needs root (CAP_NET_RAW).

Usage: spoof-udp.py SRC_IP SRC_PORT DST_IP DST_PORT HEX_PAYLOAD [COUNT]
"""
import socket
import struct
import sys


def checksum(data):
    if len(data) % 2:
        data += b'\x00'
    s = sum(struct.unpack('!%dH' % (len(data) // 2), data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def datagram(src, sport, dst, dport, payload):
    udp_len = 8 + len(payload)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack('!BBH', 0, socket.IPPROTO_UDP, udp_len)
    udp = struct.pack('!HHHH', sport, dport, udp_len, 0) + payload
    csum = checksum(pseudo + udp) or 0xFFFF
    udp = struct.pack('!HHHH', sport, dport, udp_len, csum) + payload
    total = 20 + udp_len
    ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, total, 0, 0, 64, socket.IPPROTO_UDP, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    ip = ip[:10] + struct.pack('!H', checksum(ip)) + ip[12:]
    return ip + udp


def main():
    src, sport, dst, dport, hexpayload = sys.argv[1:6]
    count = int(sys.argv[6]) if len(sys.argv) > 6 else 1
    pkt = datagram(src, int(sport), dst, int(dport), bytes.fromhex(hexpayload))
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    for _ in range(count):
        s.sendto(pkt, (dst, 0))
    s.close()


if __name__ == '__main__':
    main()
