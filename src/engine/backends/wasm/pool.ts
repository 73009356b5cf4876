// Worker threads for the WasmBackend. Every worker instantiates the same module on the same shared memory
// and then loops: wait for a new job (a generation counter in a control block), join it, run its share
// through the module's `run(job, tid)` (threads take tasks from an atomic counter in the job block), leave.
// The main thread posts a job, works on it too (tid 0) until no task is left, then closes the job and waits
// only for the workers that joined it: a worker that is slow to wake (a busy machine) is never waited for.
// Node: worker_threads (unref'd, so they never keep the process alive). Browsers: Web Workers.

/** Control block layout, in i32 slots. */
export const CTRL_SEQ = 0;
/** Workers inside the current job, plus CLOSED once the poster has finished its own share. */
export const CTRL_STATE = 1;
const CLOSED = 1 << 30;
export const CTRL_QUIT = 2;
export const CTRL_JOB = 3;
export const CTRL_READY = 4;
export const CTRL_ERROR = 5;
export const CTRL_SPIN = 6;
/** Jobs joined by any worker (statistics). */
export const CTRL_JOINS = 7;
export const CTRL_SLOTS = 16;

// Plain JavaScript (no TypeScript, no imports), so it runs as a Node `eval` worker or from a Blob URL.
const WORKER_MAIN = `
"use strict";
function workerMain(data) {
  var memory = data.memory, ctrl = data.ctrl, tid = data.tid;
  var instance = new WebAssembly.Instance(data.module, { env: { memory: memory } });
  var run = instance.exports.run;
  var c = new Int32Array(memory.buffer, ctrl, ${CTRL_SLOTS});
  var seen = Atomics.load(c, ${CTRL_SEQ});
  Atomics.add(c, ${CTRL_READY}, 1);
  Atomics.notify(c, ${CTRL_READY});
  for (;;) {
    var s = Atomics.load(c, ${CTRL_SEQ});
    if (s === seen) {
      var spin = Atomics.load(c, ${CTRL_SPIN});
      for (var n = 0; n < spin && s === seen; n++) s = Atomics.load(c, ${CTRL_SEQ});
      while (s === seen) {
        Atomics.wait(c, ${CTRL_SEQ}, seen);
        s = Atomics.load(c, ${CTRL_SEQ});
      }
    }
    seen = s;
    if (Atomics.load(c, ${CTRL_QUIT}) !== 0) break;
    var joined = false;
    for (;;) {
      var st = Atomics.load(c, ${CTRL_STATE});
      if ((st & ${CLOSED}) !== 0) break;
      if (Atomics.compareExchange(c, ${CTRL_STATE}, st, st + 1) === st) { joined = true; break; }
    }
    if (!joined) continue;
    Atomics.add(c, ${CTRL_JOINS}, 1);
    try {
      run(Atomics.load(c, ${CTRL_JOB}), tid);
    } catch (e) {
      Atomics.store(c, ${CTRL_ERROR}, 1);
    }
    if (Atomics.sub(c, ${CTRL_STATE}, 1) === ${CLOSED} + 1) Atomics.notify(c, ${CTRL_STATE});
  }
}
`;

interface AnyWorker {
  terminate(): unknown;
}

export interface PoolOptions {
  /** Iterations a worker polls for the next job before it sleeps (low latency for back-to-back kernels). */
  workerSpin?: number;
  /** Iterations the main thread polls for the workers to finish before it sleeps (Node only). */
  mainSpin?: number;
  /**
   * Contention guard: when the calling thread waits longer than this (ms), and longer than a quarter of its
   * own share of the job, for workers that joined it (a worker descheduled by another process on a busy
   * machine) twice within 32 jobs, or once for more than 1 ms, jobs run on the calling thread alone for a
   * while (100 ms, doubling up to 5 s while it persists). 0 disables the guard. Default 0.3.
   */
  stallMs?: number;
}

type NodeWorkerThreads = typeof import("node:worker_threads");

function nodeWorkerThreads(): NodeWorkerThreads | null {
  const proc = (globalThis as { process?: { versions?: { node?: string }; getBuiltinModule?: (id: string) => unknown } }).process;
  if (!proc?.versions?.node || typeof proc.getBuiltinModule !== "function") return null;
  return (proc.getBuiltinModule("node:worker_threads") as NodeWorkerThreads | undefined) ?? null;
}

/** True where this thread may block in Atomics.wait (Node's main thread and any worker; not a browser page). */
function canBlock(): boolean {
  const proc = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return !!proc?.versions?.node;
}

export class ThreadPool {
  /** Threads that work on a job: the workers plus the calling thread. */
  readonly threads: number;
  private readonly ctrl: Int32Array;
  private readonly workers: AnyWorker[] = [];
  private readonly mainSpin: number;
  private readonly stallMs: number;
  /** Recent parallel jobs and how many of them stalled; the guard's state. */
  private window = 0;
  private stalls = 0;
  private backoffMs = 100;
  private suspendedUntil = 0;
  private readonly blocking = canBlock();
  private broken = false;
  private disposed = false;
  private readonly readyPromise: Promise<void>;

  constructor(module: WebAssembly.Module, memory: WebAssembly.Memory, ctrlOffset: number, workers: number, options: PoolOptions = {}) {
    this.ctrl = new Int32Array(memory.buffer, ctrlOffset, CTRL_SLOTS);
    this.ctrl.fill(0);
    Atomics.store(this.ctrl, CTRL_STATE, CLOSED);
    Atomics.store(this.ctrl, CTRL_SPIN, options.workerSpin ?? 20000);
    this.mainSpin = options.mainSpin ?? 200000;
    this.stallMs = options.stallMs ?? 0.3;
    let resolveReady!: () => void;
    let rejectReady!: (e: unknown) => void;
    this.readyPromise = new Promise<void>((res, rej) => {
      resolveReady = res;
      rejectReady = rej;
    });
    this.readyPromise.catch(() => {});
    const wt = nodeWorkerThreads();
    let started = 0;
    const onReady = (): void => {
      if (++started === workers) resolveReady();
    };
    const onError = (e: unknown): void => {
      this.broken = true;
      rejectReady(e);
    };
    for (let tid = 1; tid <= workers; tid++) {
      const data = { module, memory, ctrl: ctrlOffset, tid };
      try {
        if (wt) {
          const w = new wt.Worker(`${WORKER_MAIN}\nworkerMain(require("node:worker_threads").workerData);`, { eval: true, workerData: data });
          // Referenced until it runs (so awaiting whenReady keeps the process alive), then unref'd:
          // idle workers must never keep a process from exiting.
          w.on("error", onError);
          w.on("online", () => {
            w.unref();
            onReady();
          });
          this.workers.push(w);
        } else if (typeof Worker !== "undefined" && typeof Blob !== "undefined") {
          const url = URL.createObjectURL(new Blob([`${WORKER_MAIN}\nself.onmessage = function (e) { workerMain(e.data); };`], { type: "text/javascript" }));
          const w = new Worker(url);
          w.onerror = onError;
          w.postMessage(data);
          this.workers.push(w);
          onReady();
        } else {
          this.broken = true;
          break;
        }
      } catch (e) {
        onError(e);
        break;
      }
    }
    if (workers === 0) resolveReady();
    this.threads = this.broken ? 1 : workers + 1;
  }

  /**
   * Jobs posted to the workers, jobs whose joined workers kept the caller waiting longer than stallMs, and
   * times the contention guard suspended the workers.
   */
  readonly stats = { posted: 0, stalled: 0, stalledMs: 0, suspensions: 0 };
  get joins(): number {
    return Atomics.load(this.ctrl, CTRL_JOINS);
  }

  /** True once every worker has entered its loop (before that, jobs run on the calling thread alone). */
  get ready(): boolean {
    return !this.broken && !this.disposed && Atomics.load(this.ctrl, CTRL_READY) === this.workers.length;
  }

  /** Ready, and not suspended by the contention guard: jobs may go to the workers. */
  get available(): boolean {
    return this.ready && (this.suspendedUntil === 0 || this.clearSuspension());
  }

  private clearSuspension(): boolean {
    if (performance.now() < this.suspendedUntil) return false;
    this.suspendedUntil = 0;
    return true;
  }

  /** Resolves when every worker is ready (rejects if a worker failed to start). */
  async whenReady(timeoutMs = 30000): Promise<void> {
    await this.readyPromise;
    const start = Date.now();
    while (!this.ready) {
      if (this.broken || this.disposed) throw new Error("WasmBackend: worker threads failed to start");
      if (Date.now() - start > timeoutMs) throw new Error("WasmBackend: worker threads did not start in time");
      await new Promise((r) => setTimeout(r, 1));
    }
  }

  /**
   * Runs `job` on every thread that joins in time: the workers are woken, the calling thread calls
   * run(job, 0) (which returns once no task is left to take), closes the job and waits for the workers
   * that joined it to finish their tasks. Call only when `ready`.
   */
  run(run: (job: number, tid: number) => void, job: number): void {
    const c = this.ctrl;
    this.stats.posted++;
    Atomics.store(c, CTRL_JOB, job);
    Atomics.store(c, CTRL_STATE, 0);
    Atomics.add(c, CTRL_SEQ, 1);
    Atomics.notify(c, CTRL_SEQ);
    let failed: unknown = null;
    const start = this.stallMs > 0 ? performance.now() : 0;
    try {
      run(job, 0);
    } catch (e) {
      failed = e;
    }
    let p = Atomics.or(c, CTRL_STATE, CLOSED) | CLOSED;
    if (p !== CLOSED) {
      const t0 = this.stallMs > 0 ? performance.now() : 0;
      for (let i = 0; p !== CLOSED && i < this.mainSpin; i++) p = Atomics.load(c, CTRL_STATE);
      while (p !== CLOSED) {
        if (this.blocking) Atomics.wait(c, CTRL_STATE, p, 1000);
        p = Atomics.load(c, CTRL_STATE);
      }
      if (this.stallMs > 0) {
        const waited = performance.now() - t0;
        // A wait longer than a quarter of the caller's own share is not just the last task finishing.
        if (waited > this.stallMs && waited > 0.25 * (t0 - start)) {
          this.stalls++;
          this.stats.stalled++;
          this.stats.stalledMs += waited;
          if (waited > 1 || this.stalls >= 2) this.suspend();
        }
      }
    }
    if (this.stallMs > 0 && ++this.window === 32) this.review();
    if (failed) throw failed;
    if (Atomics.load(c, CTRL_ERROR) !== 0) {
      Atomics.store(c, CTRL_ERROR, 0);
      throw new Error("WasmBackend: a kernel failed on a worker thread");
    }
  }

  /** Runs jobs on the calling thread alone for backoffMs, and doubles the next backoff. */
  private suspend(): void {
    this.suspendedUntil = performance.now() + this.backoffMs;
    this.stats.suspensions++;
    this.backoffMs = Math.min(5000, this.backoffMs * 2);
    this.window = 0;
    this.stalls = 0;
  }

  /** Every 32 parallel jobs without a suspension: a window without stalls resets the backoff. */
  private review(): void {
    if (this.stalls === 0) this.backoffMs = 100;
    this.window = 0;
    this.stalls = 0;
  }

  /** Stops the workers. Jobs run on the calling thread afterwards. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    Atomics.store(this.ctrl, CTRL_QUIT, 1);
    Atomics.add(this.ctrl, CTRL_SEQ, 1);
    Atomics.notify(this.ctrl, CTRL_SEQ);
    for (const w of this.workers) void w.terminate();
    this.workers.length = 0;
  }
}
