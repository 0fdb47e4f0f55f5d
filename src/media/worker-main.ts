/**
 * Entry point of a media worker thread without extensions (started by
 * `MediaWorkerPool`, pool.ts): see worker-run.ts.
 */
import { runMediaWorker } from './worker-run.js';

await runMediaWorker();
