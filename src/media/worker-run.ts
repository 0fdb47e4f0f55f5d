/**
 * The body of a media worker thread (started by `MediaWorkerPool`, pool.ts):
 * one `MediaHost` with its own UDP socket, driven by commands on the parent
 * port; events go back in batches (protocol.ts). `worker-main.ts` runs it
 * as is; a plane that plugs in from above (federation media) has an entry
 * of its own that runs it with `extend`, which installs the plane on the
 * host before its socket opens.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { isWzpError, WzpError } from '../errors/index.js';
import { MediaHost } from './host.js';
import type { MediaCommand, WorkerInit, WorkerMessage } from './protocol.js';

export async function runMediaWorker(
  extend?: (host: MediaHost, init: WorkerInit) => void,
): Promise<void> {
  const port = parentPort;
  if (port === null) {
    throw new Error('a media worker runs in a worker thread');
  }
  const init = workerData as WorkerInit;
  const post = (m: WorkerMessage): void => port.postMessage(m);
  const host = new MediaHost({
    init,
    stats: new Float64Array(init.stats),
    emit: (events) => post({ type: 'events', events }),
  });
  try {
    extend?.(host, init);
  } catch (err) {
    const e = isWzpError(err) ? err : new WzpError('MEDIA_WORKER_FAILED', String(err));
    post({ type: 'failed', code: e.code, message: e.message });
    process.exit(1);
  }
  port.on('message', (cmd: MediaCommand) => host.handle(cmd));
  try {
    const udpPort = await host.start();
    post({
      type: 'ready',
      port: udpPort,
      ioPath: host.udp.ioPath,
      receivePath: host.udp.receivePath,
      sendSocket: host.udp.sendSocket,
      ioReason: host.udp.ioReason,
    });
  } catch (err) {
    const e = isWzpError(err) ? err : new WzpError('MEDIA_WORKER_FAILED', String(err));
    post({ type: 'failed', code: e.code, message: e.message });
    process.exit(1);
  }
}
