/** Entry point of a forked load worker (see worker.ts). */
import { runWorkerProcess } from './worker.js';

runWorkerProcess();
