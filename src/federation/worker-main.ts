/**
 * Entry point of the media workers of a federated relay: the plain media
 * host (src/media/worker-run.ts), plus federation media on the worker that
 * the relay gives federation data to (worker 0, worker-plane.ts).
 */
import { runMediaWorker } from '../media/worker-run.js';
import { FederationWorkerPlane } from './worker-plane.js';
import type { FederationWorkerInit } from './worker-protocol.js';

await runMediaWorker((host, init) => {
  if (init.extension !== undefined && init.extension !== null) {
    FederationWorkerPlane.install(host, init.extension as FederationWorkerInit);
  }
});
