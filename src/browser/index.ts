/**
 * wzp-relay's browser client library (bundled as `/wzp.js` by the relay).
 *
 * ```js
 * import { connect } from '/wzp.js';
 * const call = await connect({ url: location.origin, room: 'demo', alias: 'Ada' });
 * call.addEventListener('roomupdate', (e) => console.log(e.detail));
 * ```
 */
export {
  AUDIO_CODECS,
  type CallState,
  type CallStats,
  type ConnectOptions,
  connect,
  type PeerStats,
  type SimulcastLayer,
  VIDEO_CODEC_STRINGS,
  type VideoCodecName,
  WzpCall,
  type WzpStats,
} from './client.js';
export { newRoomKey, parseRoomKey } from './crypto.js';
export { relayUrls } from './transport.js';
