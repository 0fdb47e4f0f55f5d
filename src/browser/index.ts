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
export { BrowserIdentity, newRoomKey, parseRoomKey } from './crypto.js';
export {
  type BrowserCallSetup,
  CallEnded,
  type HangupBody,
  HubConnection,
  type HubOptions,
  type IncomingBrowserCall,
  type OutgoingBrowserCall,
  type PresenceUser,
} from './hub.js';
export { relayUrls } from './transport.js';
