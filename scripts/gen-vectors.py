#!/usr/bin/env python3
"""Writes fixtures/vectors/*.json: the WZP v2 golden vectors.

Bytes are built here with Python's struct module from the layouts in
protocol/SPEC.md, independently of the TypeScript codec, so the vectors
check the codec instead of echoing it. Reference vectors (H1-H4, P1, Q1-Q3,
M1-M7, T1-T3, hashes, D3) carry the byte strings of the reference notes;
the script asserts that its own encoding reproduces them.

Run: python3 scripts/gen-vectors.py
"""
import hashlib
import json
import os
import struct

OUT = os.path.join(os.path.dirname(__file__), '..', 'fixtures', 'vectors')


def hdr(flags=0, media_type=0, codec=0, stream=0, fec=0, seq=0, ts=0, fec_block=0, version=2):
    return struct.pack('>BBBBBBIIH', version, flags, media_type, codec, stream, fec, seq, ts, fec_block)


def fields(flags=0, media_type=0, codec=0, stream=0, fec=0, seq=0, ts=0, fec_block=0):
    return {'version': 2, 'flags': flags, 'media_type': media_type, 'codec_id': codec, 'stream_id': stream,
            'fec_ratio': fec, 'seq': seq, 'timestamp_ms': ts, 'fec_block': fec_block}


def qr(loss, rtt, jitter, cap):
    return bytes([loss, rtt, jitter, cap])


def qr_fields(loss, rtt, jitter, cap):
    return {'loss_pct': loss, 'rtt_4ms': rtt, 'jitter_ms': jitter, 'bitrate_cap_kbps': cap}


def mini(sd, td, ln):
    return struct.pack('>BHH', sd, td, ln)


def trunk(entries, count=None):
    out = struct.pack('>H', len(entries) if count is None else count)
    for tag, data in entries:
        out += struct.pack('>HH', tag, len(data)) + data
    return out


def h(b):
    return b.hex()


def same(b, ref):
    assert b.hex() == ref.replace(' ', '').lower(), (b.hex(), ref)
    return b


def write(name, vectors):
    doc = {'format': 'wzp-vectors/1', 'vectors': vectors}
    with open(os.path.join(OUT, name), 'w') as f:
        json.dump(doc, f, indent=2)
        f.write('\n')


# ── MediaHeader ─────────────────────────────────────────────────────────────
H1 = same(hdr(0x40, 0, 0, 0, 42, 12345, 987654, 7), '02 40 00 00 00 2A 00 00 30 39 00 0F 12 06 00 07')
H2 = same(hdr(0x80, 0, 4, 0, 127, 0xDEADBEEF, 0xFFFFFFFF, 0xABCD), '02 80 00 04 00 7F DE AD BE EF FF FF FF FF AB CD')
H3 = same(hdr(0x40, 0, 0, 0, 50, 0xDEADBEEF, 0x12345678, 0xABCD), '02 40 00 00 00 32 DE AD BE EF 12 34 56 78 AB CD')
H4 = same(hdr(0x30, 1, 9, 2, 50, 7, 33, 0x0102), '02 30 01 09 02 32 00 00 00 07 00 00 00 21 01 02')
header_vectors = [
    {'name': 'H1', 'source': 'reference 7.1 [R] header_roundtrip', 'description': 'Q flag, audio, Opus24k, fec 42',
     'kind': 'media_header', 'hex': h(H1), 'fields': fields(0x40, 0, 0, 0, 42, 12345, 987654, 7)},
    {'name': 'H2', 'source': 'reference 7.1 [R] header_repair_flag', 'description': 'repair flag, Codec2_1200, max seq/ts',
     'kind': 'media_header', 'hex': h(H2), 'fields': fields(0x80, 0, 4, 0, 127, 0xDEADBEEF, 0xFFFFFFFF, 0xABCD)},
    {'name': 'H3', 'source': 'reference 7.1 [R] media_header_v2_roundtrip', 'description': 'Q flag, fec 50',
     'kind': 'media_header', 'hex': h(H3), 'fields': fields(0x40, 0, 0, 0, 50, 0xDEADBEEF, 0x12345678, 0xABCD)},
    {'name': 'H4', 'source': 'reference 7.1 [D]', 'description': 'video keyframe + frame end, H264Baseline, stream 2',
     'kind': 'media_header', 'hex': h(H4), 'fields': fields(0x30, 1, 9, 2, 50, 7, 33, 0x0102)},
]
for cid, name in [(11, 'H265Main'), (12, 'Av1Main')]:
    b = hdr(0x20, 1, cid, 1, 0, 1, 2, 3)
    header_vectors.append({'name': f'video-{name}', 'source': 'codec table', 'description': f'{name} keyframe on video',
                           'kind': 'media_header', 'hex': h(b), 'fields': fields(0x20, 1, cid, 1, 0, 1, 2, 3)})
for mt in (2, 3):
    b = hdr(0, mt, 9 if mt == 2 else 0, 0, 0, 5, 6, 0)
    header_vectors.append({'name': f'media-type-{mt}-any-codec', 'source': 'strictness: data/control accept any known codec',
                           'description': 'Data/Control carry any known codec id', 'kind': 'media_header', 'hex': h(b),
                           'fields': fields(0, mt, 9 if mt == 2 else 0, 0, 0, 5, 6, 0)})
b = hdr(0, 0, 8, 0, 200, 1, 1, 0)
header_vectors.append({'name': 'fec-ratio-200', 'source': 'strictness: fec_ratio ≤ 200 accepted', 'description': 'largest fec_ratio (2.0)',
                       'kind': 'media_header', 'hex': h(b), 'fields': fields(0, 0, 8, 0, 200, 1, 1, 0)})
for cid in range(0, 10):
    kind_mt = 1 if cid == 9 else 0
    b = hdr(0, kind_mt, cid, 0, 0, cid, cid * 20, 0)
    header_vectors.append({'name': f'codec-{cid}', 'source': 'codec table', 'description': f'codec id {cid}',
                           'kind': 'media_header', 'hex': h(b), 'fields': fields(0, kind_mt, cid, 0, 0, cid, cid * 20, 0)})
write('media-header.json', header_vectors)

# ── media packets and quality reports ──────────────────────────────────────
P1 = same(hdr(0x40, 0, 2, 0, 32, 100, 2000, 1) + b'test audio data here' + qr(25, 75, 10, 100),
          '02 40 00 02 00 20 00 00 00 64 00 00 07 D0 00 01 74 65 73 74 20 61 75 64 69 6F 20 64 61 74 61 20 68 65 72 65 19 4B 0A 64')
packet_vectors = [
    {'name': 'P1', 'source': 'reference 7.2 [R] media_packet_roundtrip', 'description': 'Opus6k with payload and QualityReport (40 bytes)',
     'kind': 'media_packet', 'hex': h(P1),
     'fields': {'header': fields(0x40, 0, 2, 0, 32, 100, 2000, 1), 'payload_hex': b'test audio data here'.hex(),
                'quality_report': qr_fields(25, 75, 10, 100)}},
    {'name': 'empty-payload', 'source': 'strictness: empty payload accepted', 'description': 'header only',
     'kind': 'media_packet', 'hex': h(hdr(0, 0, 5, 0, 0, 9, 180, 0)),
     'fields': {'header': fields(0, 0, 5, 0, 0, 9, 180, 0), 'payload_hex': '', 'quality_report': None}},
    {'name': 'quality-only', 'source': 'Q flag with exactly 4 trailing bytes', 'description': 'empty payload plus a report',
     'kind': 'media_packet', 'hex': h(hdr(0x40, 0, 0, 0, 0, 1, 20, 0) + qr(1, 2, 3, 200)),
     'fields': {'header': fields(0x40, 0, 0, 0, 0, 1, 20, 0), 'payload_hex': '', 'quality_report': qr_fields(1, 2, 3, 200)}},
    {'name': 'video-with-payload', 'source': 'constructed', 'description': 'AV1 packet, no report',
     'kind': 'media_packet', 'hex': h(hdr(0x10, 1, 12, 0, 10, 77, 3300, 0x0200) + bytes(range(32))),
     'fields': {'header': fields(0x10, 1, 12, 0, 10, 77, 3300, 0x0200), 'payload_hex': bytes(range(32)).hex(), 'quality_report': None}},
]
write('media-packet.json', packet_vectors)

quality_vectors = [
    {'name': 'Q1', 'source': 'reference 7.2 [R] quality_report_roundtrip', 'description': '(128, 100, 50, 200)',
     'kind': 'quality_report', 'hex': same(qr(128, 100, 50, 200), '80 64 32 C8').hex(), 'fields': qr_fields(128, 100, 50, 200)},
    {'name': 'Q2', 'source': 'reference 7.2 [L] quality_report_from_path_stats_basic', 'description': '10 %, 100 ms, 20 ms',
     'kind': 'quality_from_path_stats', 'input': {'loss_percent': 10.0, 'rtt_ms': 100, 'jitter_ms': 20},
     'hex': same(qr(25, 25, 20, 200), '19 19 14 C8').hex(), 'fields': qr_fields(25, 25, 20, 200)},
    {'name': 'Q3-zero', 'source': 'reference 7.2 [L] quality_report_from_path_stats_zero', 'description': '0, 0, 0',
     'kind': 'quality_from_path_stats', 'input': {'loss_percent': 0, 'rtt_ms': 0, 'jitter_ms': 0},
     'hex': same(qr(0, 0, 0, 200), '00 00 00 C8').hex(), 'fields': qr_fields(0, 0, 0, 200)},
    {'name': 'Q3-clamp', 'source': 'reference 7.2 [L] quality_report_from_path_stats_clamps_high', 'description': '100 %, 2000 ms, 300 ms clamp',
     'kind': 'quality_from_path_stats', 'input': {'loss_percent': 100, 'rtt_ms': 2000, 'jitter_ms': 300},
     'hex': same(qr(255, 255, 255, 200), 'FF FF FF C8').hex(), 'fields': qr_fields(255, 255, 255, 200)},
]
write('quality-report.json', quality_vectors)

# ── mini headers and compact frames ────────────────────────────────────────
mini_vectors = [
    {'name': 'M1', 'source': 'reference 7.3 [R] mini_header_encode_decode', 'description': '1, 20, 160', 'kind': 'mini_header',
     'hex': same(mini(1, 20, 160), '01 00 14 00 A0').hex(), 'fields': {'seq_delta': 1, 'timestamp_delta': 20, 'payload_len': 160}},
    {'name': 'M2', 'source': 'reference 7.3 [L] mini_header_wire_size', 'description': 'all ones', 'kind': 'mini_header',
     'hex': same(mini(255, 65535, 65535), 'FF FF FF FF FF').hex(), 'fields': {'seq_delta': 255, 'timestamp_delta': 65535, 'payload_len': 65535}},
    {'name': 'M3', 'source': 'reference 7.3 [R] mini_header_v2_roundtrip', 'description': '3, 20, 160', 'kind': 'mini_header',
     'hex': same(mini(3, 20, 160), '03 00 14 00 A0').hex(), 'fields': {'seq_delta': 3, 'timestamp_delta': 20, 'payload_len': 160}},
]
write('mini-header.json', mini_vectors)


def full(hb, payload=b'', q=None):
    return b'\x00' + hb + payload + (q or b'')


def mini_frame(sd, td, payload):
    return b'\x01' + mini(sd, td, len(payload)) + payload


def cframe(frame_type, f, payload=b'', q=None, m=None):
    return {'frame_type': frame_type, 'mini_header': m, 'header': f, 'payload_hex': payload.hex(),
            'quality_report': q}


M6 = same(full(hdr(0, 0, 0, 0, 10, 0, 0, 0), b'audio'), '00 02 00 00 00 00 0A 00 00 00 00 00 00 00 00 00 00 61 75 64 69 6F')
M7 = same(mini_frame(1, 20, b'audio'), '01 01 00 14 00 05 61 75 64 69 6F')
compact_vectors = [
    {'name': 'M6-M7', 'source': 'reference 7.3 [R]+[L] mini_frame_encode_decode_sequence', 'description': 'FULL then MINI',
     'kind': 'compact_sequence', 'frames': [
         {'hex': h(M6), 'fields': cframe('full', fields(0, 0, 0, 0, 10, 0, 0, 0), b'audio')},
         {'hex': h(M7), 'fields': cframe('mini', fields(0, 0, 0, 0, 10, 1, 20, 0), b'audio', m={'seq_delta': 1, 'timestamp_delta': 20, 'payload_len': 5})},
     ]},
    {'name': 'M4', 'source': 'reference 7.3 [L] mini_frame_context_v2_expand', 'description': 'baseline seq 100 ts 1000 fec_block 5; (3,20) then (1,20)',
     'kind': 'compact_sequence', 'frames': [
         {'hex': h(full(hdr(0, 0, 0, 0, 0, 100, 1000, 5))), 'fields': cframe('full', fields(0, 0, 0, 0, 0, 100, 1000, 5))},
         {'hex': h(mini_frame(3, 20, b'')), 'fields': cframe('mini', fields(0, 0, 0, 0, 0, 103, 1020, 5), m={'seq_delta': 3, 'timestamp_delta': 20, 'payload_len': 0})},
         {'hex': h(mini_frame(1, 20, b'')), 'fields': cframe('mini', fields(0, 0, 0, 0, 0, 104, 1040, 5), m={'seq_delta': 1, 'timestamp_delta': 20, 'payload_len': 0})},
     ]},
    {'name': 'M5', 'source': 'reference 7.3 [L] mini_frame_context_expand', 'description': 'baseline 100/1000; (1,20) twice',
     'kind': 'compact_sequence', 'frames': [
         {'hex': h(full(hdr(0, 0, 0, 0, 0, 100, 1000, 0), b'a')), 'fields': cframe('full', fields(0, 0, 0, 0, 0, 100, 1000, 0), b'a')},
         {'hex': h(mini_frame(1, 20, b'b')), 'fields': cframe('mini', fields(0, 0, 0, 0, 0, 101, 1020, 0), b'b', m={'seq_delta': 1, 'timestamp_delta': 20, 'payload_len': 1})},
         {'hex': h(mini_frame(1, 20, b'c')), 'fields': cframe('mini', fields(0, 0, 0, 0, 0, 102, 1040, 0), b'c', m={'seq_delta': 1, 'timestamp_delta': 20, 'payload_len': 1})},
     ]},
    {'name': 'wrap', 'source': 'constructed: u32 wrap', 'description': 'seq and timestamp wrap at 2^32',
     'kind': 'compact_sequence', 'frames': [
         {'hex': h(full(hdr(0, 0, 1, 0, 0, 0xFFFFFFFF, 0xFFFFFFF0, 0), b'x')), 'fields': cframe('full', fields(0, 0, 1, 0, 0, 0xFFFFFFFF, 0xFFFFFFF0, 0), b'x')},
         {'hex': h(mini_frame(2, 0x20, b'y')), 'fields': cframe('mini', fields(0, 0, 1, 0, 0, 1, 0x10, 0), b'y', m={'seq_delta': 2, 'timestamp_delta': 32, 'payload_len': 1})},
     ]},
    {'name': 'quality-not-inherited', 'source': 'strictness: a MINI expansion never has Q', 'description': 'FULL with QR, then MINI: Q cleared',
     'kind': 'compact_sequence', 'frames': [
         {'hex': h(full(hdr(0x40, 0, 0, 0, 20, 10, 200, 0), b'p', qr(1, 2, 3, 200))),
          'fields': cframe('full', fields(0x40, 0, 0, 0, 20, 10, 200, 0), b'p', qr_fields(1, 2, 3, 200))},
         {'hex': h(mini_frame(1, 20, b'q')), 'fields': cframe('mini', fields(0, 0, 0, 0, 20, 11, 220, 0), b'q', m={'seq_delta': 1, 'timestamp_delta': 20, 'payload_len': 1})},
     ]},
    {'name': 'failed-frame-keeps-context', 'source': 'strictness: a truncated MINI does not advance the context',
     'description': 'FULL, truncated MINI (error), valid MINI expands against the FULL', 'kind': 'compact_sequence', 'frames': [
         {'hex': h(full(hdr(0, 0, 0, 0, 0, 50, 500, 0))), 'fields': cframe('full', fields(0, 0, 0, 0, 0, 50, 500, 0))},
         {'hex': h(b'\x01' + mini(1, 20, 10) + b'abc'), 'error': 'WIRE_TRUNCATED'},
         {'hex': h(mini_frame(1, 20, b'')), 'fields': cframe('mini', fields(0, 0, 0, 0, 0, 51, 520, 0), m={'seq_delta': 1, 'timestamp_delta': 20, 'payload_len': 0})},
     ]},
    {'name': 'mini-without-baseline', 'source': 'reference 7.7: no baseline → reject', 'description': 'MINI first',
     'kind': 'compact_sequence', 'frames': [{'hex': h(mini_frame(1, 20, b'x')), 'error': 'WIRE_NO_BASELINE'}]},
]
write('compact.json', compact_vectors)

# ── trunk ──────────────────────────────────────────────────────────────────
T1 = same(trunk([]), '00 00')
T2 = same(trunk([(1, b'hello'), (2, b'world!'), (256, b'x')]),
          '00 03 00 01 00 05 68 65 6C 6C 6F 00 02 00 06 77 6F 72 6C 64 21 01 00 00 01 78')
T3 = same(trunk([(0xABCD, bytes(10))]), '00 01 AB CD 00 0A 00 00 00 00 00 00 00 00 00 00')


def tfields(entries):
    return {'count': len(entries), 'entries': [{'tag': t, 'length': len(d), 'data_hex': d.hex()} for t, d in entries]}


trunk_vectors = [
    {'name': 'T1', 'source': 'reference 7.4 [L] trunk_frame_empty', 'description': 'no entries', 'kind': 'trunk', 'hex': h(T1), 'fields': tfields([])},
    {'name': 'T2', 'source': 'reference 7.4 [R] trunk_frame_encode_decode', 'description': 'three entries (26 bytes)', 'kind': 'trunk',
     'hex': h(T2), 'fields': tfields([(1, b'hello'), (2, b'world!'), (256, b'x')])},
    {'name': 'T3', 'source': 'reference 7.4 [L] trunk_entry_wire_size', 'description': 'one 16-byte entry', 'kind': 'trunk',
     'hex': h(T3), 'fields': tfields([(0xABCD, bytes(10))])},
    {'name': 'empty-entry', 'source': 'constructed', 'description': 'an entry of length 0', 'kind': 'trunk',
     'hex': h(trunk([(7, b'')])), 'fields': tfields([(7, b'')])},
]
write('trunk.json', trunk_vectors)

# ── hashes, fingerprint, federation datagram ───────────────────────────────
hash_vectors = []
for name, ref in [('general', '0feae16d55365acf'), ('android', 'f60ed56a9c827589'), ('podcast', 'f62a697de0475d83'), ('call-c1', '1ad18b2c598d0733')]:
    assert hashlib.sha256(name.encode()).digest()[:8].hex() == ref
    hash_vectors.append({'name': f'room-hash-{name}', 'source': 'reference 7.5', 'description': 'SHA-256(name)[0..8]',
                         'kind': 'room_hash', 'input': name, 'hex': ref})
for name, ref in [('general', 'a47b63f7d5b511ba5bc4089a74446906'), ('android', '3f8466a8c694c38ccbe4ff7479015ae0'), ('podcast', '6502ba5e786315a68a59961f5cb766ed')]:
    assert hashlib.sha256(('featherchat-group:' + name).encode()).digest()[:16].hex() == ref
    hash_vectors.append({'name': f'hashed-room-name-{name}', 'source': 'reference 7.5', 'description': 'hex(SHA-256("featherchat-group:" + name)[0..16])',
                         'kind': 'hashed_room_name', 'input': name, 'hex': ref})
fp = hashlib.sha256(bytes(32)).digest()[:16].hex()
fp = ':'.join(fp[i:i + 4] for i in range(0, 32, 4))
assert fp == '6668:7aad:f862:bd77:6c8f:c18b:8e9f:8e20'
hash_vectors.append({'name': 'fingerprint-zero-key', 'source': 'reference 7.5', 'description': 'fingerprint of 32 zero bytes',
                     'kind': 'fingerprint', 'input_hex': bytes(32).hex(), 'fingerprint': fp})
write('hashes.json', hash_vectors)

D3 = same(hashlib.sha256(b'general').digest()[:8] + hdr(0, 0, 0, 0, 0, 1, 20, 0) + b'hi',
          '0F EA E1 6D 55 36 5A CF 02 00 00 00 00 00 00 00 00 01 00 00 00 14 00 00 68 69')
write('federation.json', [
    {'name': 'D3-general', 'source': 'reference 7.5 [D]', 'description': 'room "general", payload "hi" (26 bytes)', 'kind': 'federation',
     'hex': h(D3), 'fields': {'room_hash': '0feae16d55365acf', 'packet': {'header': fields(0, 0, 0, 0, 0, 1, 20, 0), 'payload_hex': b'hi'.hex(), 'quality_report': None}}},
])

# ── FEDERATION datagrams (frame type 0x03, relay to relay) ─────────────────
def fed_entry(hop, room, origin, tag, frame):
    return struct.pack('>B', hop) + room + origin + struct.pack('>HH', tag, len(frame)) + frame


def fed(entries, count=None):
    return b'\x03' + struct.pack('>H', len(entries) if count is None else count) + b''.join(entries)


ZERO_ORIGIN = hashlib.sha256(bytes(32)).digest()[:8]
assert ZERO_ORIGIN.hex() == '66687aadf862bd77'
RH_G = hashlib.sha256(b'general').digest()[:8]
RH_P = hashlib.sha256(b'podcast').digest()[:8]
ORIGIN_A = hashlib.sha256(b'\x01' * 32).digest()[:8]


def fed_fields(hop, room, origin, tag, f, payload=b'', q=None):
    return {'hop_limit': hop, 'room_hash': room.hex(), 'origin': origin.hex(), 'sender_tag': tag,
            'packet': {'header': f, 'payload_hex': payload.hex(), 'quality_report': q}}


fed_vectors = []


def fed_vec(name, description, entries):
    raw = fed([fed_entry(hop, room, origin, tag, full(hdr(**hf), payload, q and qr(*q))) for hop, room, origin, tag, hf, payload, q in entries])
    fed_vectors.append({'name': name, 'source': 'wzp-relay BINDING §8.4', 'description': description, 'kind': 'federation_frame',
                        'hex': raw.hex(),
                        'fields': {'entries': [fed_fields(hop, room, origin, tag, fields(**hf), payload, q and qr_fields(*q))
                                               for hop, room, origin, tag, hf, payload, q in entries]}})


AUD = dict(codec=2, seq=1, ts=20)
fed_vec('F1-single', 'one entry: room "general", origin = relay id of the all-zero key, tag 1, payload "hi"',
        [(8, RH_G, ZERO_ORIGIN, 1, AUD, b'hi', None)])
fed_vec('F2-three-entries', 'three entries, two rooms, two origins, tags 1, 2 and 65535',
        [(8, RH_G, ZERO_ORIGIN, 1, AUD, b'one', None),
         (7, RH_P, ORIGIN_A, 2, dict(codec=2, seq=99, ts=1980), b'two', None),
         (1, RH_G, ORIGIN_A, 65535, dict(codec=2, seq=0xffffffff, ts=0xffffffff), b'', None)])
fed_vec('F3-quality-report', 'packet with a QualityReport trailer', [(4, RH_G, ZERO_ORIGIN, 3, dict(flags=0x40, codec=2, seq=5, ts=100), b'abc', (10, 25, 3, 64))])
fed_vec('F4-hop-1', 'hop_limit 1: delivered locally, never forwarded', [(1, RH_G, ZERO_ORIGIN, 1, AUD, b'x', None)])
fed_vec('F5-hop-16', 'hop_limit 16, the largest', [(16, RH_G, ZERO_ORIGIN, 1, AUD, b'x', None)])
fed_vec('F6-video-keyframe', 'H264Baseline video keyframe with frame-end on stream 2', [(8, RH_P, ORIGIN_A, 7, dict(flags=0x30, media_type=1, codec=9, stream=2, seq=42, ts=840), b'\x00\x01\x02\x03', None)])
write('federation-frame.json', fed_vectors)

# ── bind datagrams (return-path validation, protocol/BINDING.md §4.1) ─────────
BIND_TOKEN = bytes(range(0xA0, 0xB0))
BIND_CHAL = bytes(range(0x30, 0x40))


def bind_dgram(token, size=48):
    """BIND: 0x10 ‖ token (16) ‖ zero padding, 33..1200 bytes in all."""
    return b'\x10' + token + bytes(size - 17)


def bind_vec(name, description, b, f):
    return {'name': name, 'kind': 'bind', 'description': description, 'hex': h(b), 'fields': f}


bind_vectors = [
    bind_vec('bind-48', 'BIND at the recommended 48 bytes', bind_dgram(BIND_TOKEN),
             {'frame_type': 'BIND', 'token': BIND_TOKEN.hex(), 'size': 48}),
    bind_vec('bind-33-minimum', 'shortest BIND: as long as the BIND_CHALLENGE it provokes', bind_dgram(BIND_TOKEN, 33),
             {'frame_type': 'BIND', 'token': BIND_TOKEN.hex(), 'size': 33}),
    bind_vec('bind-1200-maximum', 'longest BIND accepted', bind_dgram(BIND_TOKEN, 1200),
             {'frame_type': 'BIND', 'token': BIND_TOKEN.hex(), 'size': 1200}),
    bind_vec('bind-challenge', 'relay → client: token ‖ challenge (33 bytes)', b'\x14' + BIND_TOKEN + BIND_CHAL,
             {'frame_type': 'BIND_CHALLENGE', 'token': BIND_TOKEN.hex(), 'challenge': BIND_CHAL.hex()}),
    bind_vec('bind-confirm', 'client → relay: the challenge echoed (33 bytes)', b'\x15' + BIND_TOKEN + BIND_CHAL,
             {'frame_type': 'BIND_CONFIRM', 'token': BIND_TOKEN.hex(), 'challenge': BIND_CHAL.hex()}),
    bind_vec('bind-ack', 'relay → client after a valid confirm: token (17 bytes)', b'\x11' + BIND_TOKEN,
             {'frame_type': 'BIND_ACK', 'token': BIND_TOKEN.hex()}),
]
assert all(len(bytes.fromhex(v['hex'])) >= 33 for v in bind_vectors if v['fields']['frame_type'] == 'BIND')
write('bind.json', bind_vectors)

# ── invalid inputs ─────────────────────────────────────────────────────────
inv = []


def bad(name, kind, b, code, why):
    inv.append({'name': name, 'kind': kind, 'hex': b.hex(), 'error': code, 'description': why})


good = hdr(0, 0, 0, 0, 0, 1, 20, 0)
bad('empty-header', 'media_header', b'', 'WIRE_TRUNCATED', 'no bytes')
bad('header-15-bytes', 'media_header', good[:15], 'WIRE_TRUNCATED', 'one byte short')
bad('packet-9-bytes', 'media_packet', good[:9], 'WIRE_TRUNCATED', 'the reference transport test: 9 bytes')
for v in (0, 1, 3, 0x82, 0xFF):
    bad(f'version-{v}', 'media_header', hdr(version=v), 'WIRE_BAD_VERSION', f'version byte {v}')
for bit in (0x01, 0x02, 0x04, 0x08):
    bad(f'reserved-bit-{bit:#04x}', 'media_header', hdr(flags=bit), 'WIRE_RESERVED_BITS', 'reserved flag bit set')
bad('reserved-bits-all-with-q', 'media_packet', hdr(flags=0x4F) + b'abcd', 'WIRE_RESERVED_BITS', 'reserved bits take precedence over later checks')
for mt in (4, 127, 255):
    bad(f'media-type-{mt}', 'media_header', hdr(media_type=mt), 'WIRE_UNKNOWN_MEDIA_TYPE', f'media_type {mt}')
for cid in (10, 13, 14, 100, 255):
    bad(f'codec-{cid}', 'media_header', hdr(codec=cid), 'WIRE_UNKNOWN_CODEC', f'codec_id {cid} is reserved or unknown')
for cid in (0, 4, 5, 8):
    bad(f'audio-codec-{cid}-on-video', 'media_header', hdr(media_type=1, codec=cid), 'WIRE_CODEC_MEDIA_MISMATCH', 'audio codec on a video packet')
for cid in (9, 11, 12):
    bad(f'video-codec-{cid}-on-audio', 'media_header', hdr(media_type=0, codec=cid), 'WIRE_CODEC_MEDIA_MISMATCH', 'video codec on an audio packet')
bad('keyframe-on-audio', 'media_header', hdr(flags=0x20), 'WIRE_VIDEO_FLAGS_ON_AUDIO', 'K flag on audio')
bad('frame-end-on-audio', 'media_header', hdr(flags=0x10), 'WIRE_VIDEO_FLAGS_ON_AUDIO', 'E flag on audio')
for fec in (201, 255):
    bad(f'fec-ratio-{fec}', 'media_header', hdr(fec=fec), 'WIRE_FEC_RATIO_RANGE', f'fec_ratio {fec} > 200')
for n in (0, 1, 2, 3):
    bad(f'quality-flag-{n}-trailing', 'media_packet', hdr(flags=0x40) + bytes(n), 'WIRE_MISSING_QUALITY_REPORT', f'Q set with {n} bytes after the header')
bad('qr-3-bytes', 'quality_report', bytes(3), 'WIRE_TRUNCATED', 'a report is 4 bytes')
bad('qr-5-bytes', 'quality_report', bytes(5), 'WIRE_TRAILING_BYTES', 'a report is 4 bytes')
bad('mini-header-4-bytes', 'mini_header', bytes(4), 'WIRE_TRUNCATED', 'a MiniHeader is 5 bytes')
bad('mini-header-6-bytes', 'mini_header', bytes(6), 'WIRE_TRAILING_BYTES', 'a MiniHeader is 5 bytes')
bad('compact-empty', 'compact', b'', 'WIRE_TRUNCATED', 'no frame-type byte')
bad('compact-unknown-type-02', 'compact', good, 'WIRE_UNKNOWN_FRAME_TYPE', 'a bare media packet is not a compact frame')
bad('compact-unknown-type-7f', 'compact', b'\x7f' + good, 'WIRE_UNKNOWN_FRAME_TYPE', 'unknown frame type')
bad('full-truncated-header', 'compact', b'\x00' + good[:10], 'WIRE_TRUNCATED', 'FULL with a short header')
bad('full-bad-version', 'compact', b'\x00' + hdr(version=1), 'WIRE_BAD_VERSION', 'FULL with version 1')
bad('mini-short-header', 'compact', b'\x01\x01\x00', 'WIRE_TRUNCATED', 'MINI with 2 of 5 header bytes')
bad('mini-no-baseline', 'compact', mini_frame(1, 20, b'abc'), 'WIRE_NO_BASELINE', 'MINI before any FULL')
bad('mini-payload-truncated', 'compact', b'\x01' + mini(1, 20, 8) + b'abc', 'WIRE_TRUNCATED', 'payload_len larger than the rest')
bad('mini-trailing-bytes', 'compact', mini_frame(1, 20, b'abc') + b'!', 'WIRE_TRAILING_BYTES', 'bytes after the MINI payload')
bad('trunk-empty', 'trunk', b'', 'WIRE_TRUNCATED', 'no count')
bad('trunk-1-byte', 'trunk', b'\x00', 'WIRE_TRUNCATED', 'half a count')
bad('trunk-count-too-large', 'trunk', trunk([(1, b'a')], count=2), 'WIRE_TRUNCATED', 'count larger than the entries present')
bad('trunk-entry-header-cut', 'trunk', b'\x00\x01\x00\x01\x00', 'WIRE_TRUNCATED', 'entry header cut')
bad('trunk-entry-data-cut', 'trunk', b'\x00\x01\x00\x01\x00\x05abc', 'WIRE_TRUNCATED', 'entry data shorter than its length')
bad('trunk-trailing-bytes', 'trunk', trunk([(1, b'a')]) + b'\x00', 'WIRE_TRAILING_BYTES', 'bytes after the last entry')
bad('trunk-zero-count-trailing', 'trunk', b'\x00\x00\xff', 'WIRE_TRAILING_BYTES', 'empty trunk followed by a byte')
bad('federation-7-bytes', 'federation', bytes(7), 'WIRE_TRUNCATED', 'shorter than a room hash')
bad('federation-no-packet', 'federation', bytes(8), 'WIRE_TRUNCATED', 'room hash only')
bad('federation-short-packet', 'federation', bytes(8) + good[:12], 'WIRE_TRUNCATED', '20 bytes: 12 of the 16 header bytes')
bad('federation-bad-packet', 'federation', bytes(8) + hdr(codec=10), 'WIRE_UNKNOWN_CODEC', 'inner packet invalid')
ok_entry = fed_entry(8, RH_G, ZERO_ORIGIN, 1, full(hdr(codec=2, seq=1, ts=20), b'hi'))
bad('fed-empty', 'federation_frame', b'', 'WIRE_TRUNCATED', 'no bytes')
bad('fed-2-bytes', 'federation_frame', b'\x03\x00', 'WIRE_TRUNCATED', 'half a count')
bad('fed-wrong-type', 'federation_frame', b'\x02' + ok_entry[:0] + struct.pack('>H', 1) + ok_entry, 'WIRE_UNKNOWN_FRAME_TYPE', 'first byte 0x02 (TRUNK), not 0x03')
bad('fed-count-0', 'federation_frame', fed([], count=0), 'WIRE_BAD_COUNT', 'no entries')
bad('fed-count-65', 'federation_frame', fed([ok_entry] * 65), 'WIRE_BAD_COUNT', '65 entries, the limit is 64')
bad('fed-hop-0', 'federation_frame', fed([fed_entry(0, RH_G, ZERO_ORIGIN, 1, full(hdr(codec=2), b'x'))]), 'WIRE_BAD_HOP_LIMIT', 'hop_limit 0 (spent)')
bad('fed-hop-17', 'federation_frame', fed([fed_entry(17, RH_G, ZERO_ORIGIN, 1, full(hdr(codec=2), b'x'))]), 'WIRE_BAD_HOP_LIMIT', 'hop_limit above 16')
bad('fed-tag-0', 'federation_frame', fed([fed_entry(8, RH_G, ZERO_ORIGIN, 0, full(hdr(codec=2), b'x'))]), 'WIRE_BAD_SENDER_TAG', 'sender_tag 0')
bad('fed-entry-header-cut', 'federation_frame', fed([ok_entry[:15]]), 'WIRE_TRUNCATED', 'entry header cut after 15 of 21 bytes')
bad('fed-frame-cut', 'federation_frame', fed([ok_entry[:-1]]), 'WIRE_TRUNCATED', 'frame shorter than its length')
bad('fed-count-too-large', 'federation_frame', fed([ok_entry], count=2), 'WIRE_TRUNCATED', 'count 2, one entry present')
bad('fed-trailing', 'federation_frame', fed([ok_entry]) + b'\x00', 'WIRE_TRAILING_BYTES', 'a byte after the last entry')
bad('fed-mini-inside', 'federation_frame', fed([fed_entry(8, RH_G, ZERO_ORIGIN, 1, b'\x01' + mini(1, 20, 2) + b'hi')]), 'WIRE_UNKNOWN_FRAME_TYPE', 'MINI frames never cross a link')
bad('fed-empty-frame', 'federation_frame', fed([fed_entry(8, RH_G, ZERO_ORIGIN, 1, b'')]), 'WIRE_TRUNCATED', 'entry with a zero-length frame')
bad('fed-inner-bad-version', 'federation_frame', fed([fed_entry(8, RH_G, ZERO_ORIGIN, 1, full(hdr(version=1)))]), 'WIRE_BAD_VERSION', 'inner header version 1')
bad('fed-inner-unknown-codec', 'federation_frame', fed([fed_entry(8, RH_G, ZERO_ORIGIN, 1, full(hdr(codec=10)))]), 'WIRE_UNKNOWN_CODEC', 'inner codec 10')
bad('fed-inner-missing-qr', 'federation_frame', fed([fed_entry(8, RH_G, ZERO_ORIGIN, 1, full(hdr(flags=0x40, codec=2), b'ab'))]), 'WIRE_MISSING_QUALITY_REPORT', 'inner Q flag with 2 trailing bytes')
bad('bind-17-legacy', 'bind', b'\x10' + BIND_TOKEN, 'WIRE_TRUNCATED', 'the unpadded 17-byte BIND: shorter than the challenge it would provoke')
bad('bind-32', 'bind', bind_dgram(BIND_TOKEN, 33)[:32], 'WIRE_TRUNCATED', 'one byte under the 33-byte minimum')
bad('bind-1201', 'bind', bind_dgram(BIND_TOKEN, 1201), 'WIRE_TOO_LARGE', 'one byte over the 1200-byte maximum')
bad('bind-nonzero-padding', 'bind', bind_dgram(BIND_TOKEN)[:47] + b'\x01', 'WIRE_BAD_PADDING', 'the last padding byte is 0x01')
bad('bind-challenge-32', 'bind', (b'\x14' + BIND_TOKEN + BIND_CHAL)[:32], 'WIRE_TRUNCATED', 'a challenge is 33 bytes')
bad('bind-confirm-34', 'bind', b'\x15' + BIND_TOKEN + BIND_CHAL + b'\x00', 'WIRE_TRAILING_BYTES', 'a confirm is 33 bytes')
bad('bind-ack-18', 'bind', b'\x11' + BIND_TOKEN + b'\x00', 'WIRE_TRAILING_BYTES', 'a BIND_ACK is 17 bytes')
bad('bind-unknown-type', 'bind', b'\x16' + BIND_TOKEN + BIND_CHAL, 'WIRE_UNKNOWN_FRAME_TYPE', '0x16 is not a bind datagram')
write('invalid.json', inv)
print(f'wrote {len(inv)} invalid vectors')
