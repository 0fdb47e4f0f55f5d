/**
 * Entry point of a media worker thread (started by `MediaWorkerPool`,
 * pool.ts): one `MediaHost` with its own UDP socket, driven by commands on
 * the parent port; events go back in batches (protocol.ts).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { isWzpError, WzpError } from '../errors/index.js';
import { MediaHost } from './host.js';
import type { MediaCommand, WorkerInit, WorkerMessage } from './protocol.js';

const port = parentPort;
if (port === null) {
  throw new Error('worker-main.ts runs in a worker thread');
}
const init = workerData as WorkerInit;
const post = (m: WorkerMessage): void => port.postMessage(m);
const host = new MediaHost({
  init,
  stats: new Float64Array(init.stats),
  emit: (events) => post({ type: 'events', events }),
});
port.on('message', (cmd: MediaCommand) => host.handle(cmd));
try {
  const udpPort = await host.start();
  post({
    type: 'ready',
    port: udpPort,
    ioPath: host.udp.ioPath,
    receivePath: host.udp.receivePath,
    ioReason: host.udp.ioReason,
  });
} catch (err) {
  const e = isWzpError(err) ? err : new WzpError('MEDIA_WORKER_FAILED', String(err));
  post({ type: 'failed', code: e.code, message: e.message });
  process.exit(1);
}
