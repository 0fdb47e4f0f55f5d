/**
 * Stream identity. A sender's streams are told apart by (media_type,
 * stream_id): by the spec, stream 0 is both the default audio stream and
 * the base video layer, so a sender that sends audio and video has two
 * streams with id 0, each with its own `seq`, `timestamp_ms` and FEC
 * blocks. Every per-stream state the relay keeps (statistics, replay
 * windows, keyframe cache, PLI targets, layer selection) is keyed by the
 * sender plus this key, never by `stream_id` alone.
 */

/** Number of distinct stream keys (media types 0..3 × stream ids 0..255). */
export const STREAM_KEYS = 1024;

/** The key of (media_type, stream_id): `media_type << 8 | stream_id`, 0..1023. */
export function streamKey(mediaType: number, streamId: number): number {
  return ((mediaType & 3) << 8) | (streamId & 0xff);
}

/** Media type of a stream key. */
export function keyMediaType(key: number): number {
  return key >>> 8;
}

/** Stream id of a stream key. */
export function keyStreamId(key: number): number {
  return key & 0xff;
}

const MEDIA_NAMES = ['audio', 'video', 'data', 'control'] as const;

/** `audio`, `video`, `data` or `control`. */
export function mediaTypeName(mediaType: number): (typeof MEDIA_NAMES)[number] {
  return MEDIA_NAMES[mediaType & 3] as (typeof MEDIA_NAMES)[number];
}
