/**
 * `wzp listen` and `wzp call <fingerprint>`: the direct-call hub from the
 * command line. Both register the identity kept in `--identity-dir` (created
 * on first use), print JSON lines, and on CallSetup join the call room with
 * the call's end-to-end key and stream a synthetic audio source.
 */
import type { Command } from 'commander';
import { type CallSetupInfo, HubClient, type IncomingCall, WzpClient } from '../../client/index.js';
import { WzpError } from '../../errors/index.js';
import { loadOrCreateIdentity } from '../../server/identity-store.js';
import { createHeader } from '../../wire/index.js';
import { type CliIo, EXIT_FAILURE, EXIT_OK, reportError } from '../io.js';

interface CommonFlags {
  identityDir: string;
  alias?: string;
  contacts?: string;
  token?: string;
  seconds: string;
}

/** ws://host:port, …/v2/signal or …/v2/hub → the hub URL. */
export function hubUrlOf(url: string): string {
  const u = url.replace(/\/+$/, '');
  if (u.endsWith('/v2/hub')) {
    return u;
  }
  if (u.endsWith('/v2/signal')) {
    return `${u.slice(0, -'/v2/signal'.length)}/v2/hub`;
  }
  if (!/^wss?:\/\/[^/]+$/.test(u)) {
    throw new WzpError('CONFIG_INVALID', `not a relay URL: ${url} (ws://host:port[/v2/hub])`);
  }
  return `${u}/v2/hub`;
}

async function register(url: string, f: CommonFlags): Promise<HubClient> {
  const { identity } = loadOrCreateIdentity(f.identityDir);
  return HubClient.connect({
    url: hubUrlOf(url),
    identity,
    alias: f.alias ?? null,
    contacts: (f.contacts ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
    ...(f.token !== undefined ? { token: f.token } : {}),
  });
}

/** Joins the call room, streams 50 frames/s for `seconds` (0 = until the call ends). */
async function stream(
  io: CliIo,
  hub: HubClient,
  setup: CallSetupInfo,
  seconds: number,
  token: string | undefined,
): Promise<void> {
  const client = await WzpClient.connect({
    signalUrl: setup.relayUrl,
    room: setup.room,
    identity: hub.identity,
    roomKey: setup.roomKey,
    ...(token !== undefined ? { token } : {}),
  });
  io.out(JSON.stringify({ event: 'in_call', room: setup.room, relay: setup.relayUrl }));
  let received = 0;
  client.on('media', () => {
    received++;
  });
  const header = createHeader({ fecRatio: 20 });
  const payload = Buffer.alloc(60);
  let seq = 0;
  const timer = setInterval(() => {
    header.seq = seq;
    header.timestamp = (seq * 20) >>> 0;
    payload.writeUInt32BE(seq, 0);
    client.sendMedia(header, payload, null);
    seq++;
  }, 20);
  await new Promise<void>((resolve) => {
    if (seconds > 0) {
      setTimeout(resolve, seconds * 1000).unref();
    }
    const onHangup = (h: { call_id?: string | undefined }): void => {
      if (h.call_id === setup.callId) {
        resolve();
      }
    };
    hub.on('hangup', onHangup);
    client.once('hangup', () => resolve());
    client.once('close', () => resolve());
    process.once('SIGINT', () => resolve());
  });
  clearInterval(timer);
  await client.close();
  io.out(JSON.stringify({ event: 'call_ended', room: setup.room, sent: seq, received }));
}

function common(cmd: Command): Command {
  return cmd
    .option(
      '--identity-dir <dir>',
      'directory of this identity (created on first use)',
      '.wzp-client',
    )
    .option('--alias <name>', 'display name')
    .option('--contacts <fps>', 'comma-separated fingerprints to see and be seen by')
    .option('--token <jwt>', 'access token with the call grant (wzp token --call)');
}

export function registerCall(program: Command, io: CliIo, setExit: (code: number) => void): void {
  common(
    program
      .command('listen')
      .description("register on a relay's hub and answer incoming calls")
      .argument('<relay-url>', 'ws://host:port (or …/v2/hub)'),
  )
    .option('--reject', 'reject every call instead of answering', false)
    .option('--seconds <n>', 'stop listening after n seconds (0 = until Ctrl-C)', '0')
    .option(
      '--call-seconds <n>',
      'hang up each call after n seconds (0 = when the caller does)',
      '0',
    )
    .action(async (url: string, f: CommonFlags & { reject: boolean; callSeconds: string }) => {
      let hub: HubClient;
      try {
        hub = await register(url, f);
      } catch (err) {
        setExit(reportError(io, err));
        return;
      }
      io.out(JSON.stringify({ event: 'registered', fingerprint: hub.fingerprint }));
      hub.on('presence', (users) => io.out(JSON.stringify({ event: 'presence', users })));
      let busy = false;
      hub.on('incoming', (call: IncomingCall) => {
        io.out(
          JSON.stringify({
            event: 'incoming',
            call_id: call.offer.call_id,
            from: call.callerFingerprint,
            alias: call.callerAlias,
          }),
        );
        if (f.reject || busy) {
          call.reject();
          return;
        }
        busy = true;
        call
          .accept()
          .then((setup) => stream(io, hub, setup, Number(f.callSeconds), f.token))
          .then(() => {
            hub.hangup(call.offer.call_id);
          })
          .catch((err: unknown) =>
            io.out(JSON.stringify({ event: 'call_failed', error: String(err) })),
          )
          .finally(() => {
            busy = false;
          });
      });
      await new Promise<void>((resolve) => {
        const seconds = Number(f.seconds);
        if (seconds > 0) {
          setTimeout(resolve, seconds * 1000).unref();
        }
        hub.once('close', () => resolve());
        process.once('SIGINT', () => resolve());
      });
      await hub.close();
      setExit(EXIT_OK);
    });

  common(
    program
      .command('call')
      .description('call a person by fingerprint; on answer, join the call room and stream')
      .argument('<relay-url>', 'ws://host:port (or …/v2/hub)')
      .argument('<fingerprint>', 'the callee (xxxx:xxxx:…, 8 groups)'),
  )
    .option('--seconds <n>', 'hang up after n seconds in the call (0 = when the callee does)', '10')
    .action(async (url: string, target: string, f: CommonFlags) => {
      let hub: HubClient;
      try {
        hub = await register(url, f);
      } catch (err) {
        setExit(reportError(io, err));
        return;
      }
      io.out(JSON.stringify({ event: 'registered', fingerprint: hub.fingerprint }));
      const { callId, setup } = hub.call(target, {
        onRinging: () => io.out(JSON.stringify({ event: 'ringing', call_id: callId })),
      });
      io.out(JSON.stringify({ event: 'calling', call_id: callId, target }));
      try {
        const s = await setup;
        io.out(JSON.stringify({ event: 'answered', call_id: callId, room: s.room }));
        await stream(io, hub, s, Number(f.seconds), f.token);
        hub.hangup(callId);
        setExit(EXIT_OK);
      } catch (err) {
        io.out(JSON.stringify({ event: 'call_failed', call_id: callId, error: String(err) }));
        setExit(EXIT_FAILURE);
      }
      await hub.close();
    });
}
