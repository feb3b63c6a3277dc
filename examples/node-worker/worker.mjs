// A teatree compute worker in Node.js, written from docs/contract.md
// ("Compute calls" and "Workers") and nothing else of teatree's: it
// advertises itself in the KV bucket tt_compute, pulls jobs from its
// routes' durable consumers of TT_CALL, runs them on the job's DuckDB
// file and reports on tt.evt.<model>.call.
//
// Usage: node worker.mjs --nats URL [--id ID] [--slots N] [--capabilities a,b] [--prefix tt]
import { connect, nanos } from "@nats-io/transport-node";
import { AckPolicy, jetstream, jetstreamManager, JetStreamApiError } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { DuckDBInstance } from "@duckdb/node-api";
import { hostname } from "node:os";
import { parseArgs } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";

import { localCopy, writeResult } from "./blobs.mjs";
import { handlers, JobError } from "./handlers.mjs";

const heartbeatEvery = 5000; // the contract's heartbeat period
const workingEvery = 5000; // +WPI at least every 10 s; twice as often leaves room
const fetchExpires = 1000; // how long one pull waits for a job while holding a slot
const progressEvery = 1000; // at most one progress event a second
const stopGrace = 10000; // how long a stop waits for running jobs
const maxCapabilities = 3;

const idRule = /^[A-Za-z0-9_-]{1,64}$/;
const modelRule = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const capabilityRule = /^[a-z0-9][a-z0-9_:-]{0,62}$/;

const { values: flags } = parseArgs({
  options: {
    nats: { type: "string", default: "nats://127.0.0.1:4222" },
    id: { type: "string", default: `node-${hostname()}-${process.pid}`.replace(/[^A-Za-z0-9_-]/g, "-").slice(0, 64) },
    slots: { type: "string", default: "2" },
    capabilities: { type: "string", default: "node" },
    prefix: { type: "string", default: "tt" },
  },
});
const id = flags.id;
const slots = Number(flags.slots);
const capabilities = [...new Set(flags.capabilities.split(",").map((c) => c.trim()).filter(Boolean))].sort();
const prefix = flags.prefix;
if (!idRule.test(id)) fatal(`--id ${id}: want ${idRule}`);
if (!Number.isInteger(slots) || slots < 1) fatal(`--slots ${flags.slots}: want a positive integer`);
if (capabilities.length === 0) fatal("--capabilities: want at least one");
for (const c of capabilities) {
  if (!capabilityRule.test(c)) fatal(`capability ${c}: want ${capabilityRule}`);
}
const callStream = prefix.toUpperCase().replaceAll("-", "_") + "_CALL";

function fatal(message) {
  console.error(`node worker: ${message}`);
  process.exit(2);
}

function log(message) {
  console.error(`${new Date().toISOString()} worker ${id}: ${message}`);
}

// routes are every handler with every non-empty set of at most three of
// the capabilities, sorted and joined by +.
function routes() {
  const sets = [];
  const grow = (from, set) => {
    if (set.length > 0) sets.push(set);
    if (set.length === maxCapabilities) return;
    for (let i = from; i < capabilities.length; i++) grow(i + 1, [...set, capabilities[i]]);
  };
  grow(0, []);
  return Object.keys(handlers).flatMap((h) => sets.map((s) => `${h}@${s.join("+")}`));
}

// Slots is a counting semaphore whose waiters are served in turn, so that
// every route gets to fetch when there are fewer slots than routes.
class Slots {
  #free;
  #waiters = [];
  constructor(n) {
    this.#free = n;
  }
  acquire() {
    if (this.#free > 0) {
      this.#free--;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#waiters.push(resolve));
  }
  release() {
    const next = this.#waiters.shift();
    if (next) next();
    else this.#free++;
  }
}

const nc = await connect({ servers: flags.nats, name: `teatree node worker ${id}` });
const js = jetstream(nc);
const jsm = await jetstreamManager(nc);
const kv = await new Kvm(nc).open(`${prefix}_compute`);
const enc = new TextEncoder();
const startedAt = new Date().toISOString();
const running = new Map(); // "<model>.<call id>" → the job's AbortController
const free = new Slots(slots);
let stopping = false;

async function heartbeat() {
  const beat = {
    id, capabilities, handlers: Object.keys(handlers), slots,
    running: [...running.keys()], lang: "node", started_at: startedAt,
  };
  await kv.put(id, JSON.stringify(beat));
}

// bind returns the durable consumer of route, creating it when missing
// with exactly the contract's settings.
async function bind(route) {
  const name = `call-${route}`;
  try {
    await jsm.consumers.info(callStream, name);
  } catch (err) {
    if (!(err instanceof JetStreamApiError) || err.code !== 10014) throw err;
    await jsm.consumers.add(callStream, {
      durable_name: name,
      filter_subject: `${prefix}.call.${route}.*`,
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(30000),
      max_deliver: -1,
    });
  }
  return js.consumers.get(callStream, name);
}

// pull fetches the jobs of one route, one at a time, while a slot is free.
async function pull(route, consumer) {
  while (!stopping) {
    await free.acquire();
    if (stopping) {
      free.release();
      break;
    }
    let msg = null;
    try {
      msg = await consumer.next({ expires: fetchExpires });
    } catch (err) {
      free.release();
      if (!stopping) {
        log(`fetch ${route}: ${err.message}`);
        await sleep(1000);
      }
      continue;
    }
    if (!msg) {
      free.release();
      continue;
    }
    run(route, msg).finally(() => free.release());
  }
}

// report publishes one event of a call on tt.evt.<model>.call.
async function report(job, attempt, event, fields = {}, msgIDEvent = event) {
  const body = { event, model: job.model, call_id: job.call_id, attempt, worker: id, ...fields };
  await js.publish(`${prefix}.evt.${job.model}.call`, enc.encode(JSON.stringify(body)), {
    msgID: `${job.model}.${job.call_id}.${attempt}.${msgIDEvent}`,
  });
}

// run runs one job and settles its message: ack after done, +TERM after a
// final failure, else a nak with the contract's backoff.
async function run(route, msg) {
  const attempt = msg.info.deliveryCount;
  let job;
  try {
    job = msg.json();
  } catch (err) {
    log(`${route}: job ${msg.seq} is not JSON, terminated: ${err.message}`);
    msg.term("not JSON");
    return;
  }
  if (!modelRule.test(job.model ?? "") || !idRule.test(job.call_id ?? "")) {
    log(`${route}: job ${msg.seq} names model ${job.model} and call ${job.call_id}, terminated`);
    msg.term("bad model or call id");
    return;
  }
  const key = `${job.model}.${job.call_id}`;
  const fail = async (error, final) => {
    log(`${key} attempt ${attempt} failed${final ? " for good" : ""}: ${error.code}: ${error.message}`);
    await report(job, attempt, "failed", { error, final });
    if (final) msg.term(error.code);
    else msg.nak(Math.min(2 ** (attempt - 1), 60) * 1000);
  };
  const deadline = Date.parse(job.deadline);
  const result = job.results?.[attempt - 1];
  const handler = handlers[job.handler];
  try {
    if (!(deadline > Date.now())) {
      return await fail({ code: "deadline_exceeded", message: `deadline ${job.deadline} passed before attempt ${attempt}` }, true);
    }
    if (attempt > job.max_attempts || !result?.url) {
      return await fail({ code: "internal", message: `attempt ${attempt} of ${job.max_attempts}: the job has no result URL for it` }, true);
    }
    if (!handler) {
      return await fail({ code: "invalid_argument", message: `handler ${job.handler}: this worker has none` }, true);
    }
  } catch (err) {
    log(`${key}: report failure: ${err.message}`);
    return;
  }

  const abort = new AbortController();
  running.set(key, abort);
  const working = setInterval(() => msg.working(), workingEvery);
  // A timer longer than 2^31-1 ms fires at once: such a deadline is far
  // enough to be checked again later.
  const timer = setTimeout(() => abort.abort(new JobError("deadline_exceeded", `deadline ${job.deadline} passed`, { retryable: false })),
    Math.min(deadline - Date.now(), 2 ** 31 - 1));
  const cancel = nc.subscribe(`${prefix}.work.cancel.${job.model}.${job.call_id}`, {
    max: 1,
    callback: () => abort.abort(new JobError("cancelled", "cancelled", { retryable: false })),
  });
  const aborted = new Promise((_, reject) => {
    abort.signal.addEventListener("abort", () => reject(abort.signal.reason), { once: true });
  });
  aborted.catch(() => {});
  let db, copy, conn;
  // A query does not watch the signal: interrupt it.
  abort.signal.addEventListener("abort", () => conn?.interrupt(), { once: true });
  let progressN = 0;
  let lastProgress = 0;
  let progressSent = Promise.resolve();
  const ctx = {
    attempt,
    job,
    signal: abort.signal,
    async input() {
      if (!conn) {
        copy = await localCopy(job.input.duckdb.url, abort.signal);
        db = await DuckDBInstance.create(copy.path, { access_mode: "READ_ONLY" });
        conn = await db.connect();
      }
      return conn;
    },
    progress(fraction, message = "") {
      const now = Date.now();
      if (abort.signal.aborted || now - lastProgress < progressEvery) return;
      lastProgress = now;
      const n = ++progressN;
      // Chained, so that progress is published in order and before the
      // attempt's last event.
      progressSent = progressSent
        .then(() => report(job, attempt, "progress", { fraction, message }, `progress.${n}`))
        .catch((err) => log(`${key}: progress ${n}: ${err.message}`));
    },
  };
  try {
    await report(job, attempt, "started");
    log(`${key} attempt ${attempt} started (${job.handler})`);
    const rows = await Promise.race([handler(job.args ?? {}, ctx), aborted]);
    if (!Array.isArray(rows)) throw new Error(`handler ${job.handler} returned no array`);
    const body = JSON.stringify(rows);
    await Promise.race([writeResult(result.url, body, abort.signal), aborted]);
    abort.signal.throwIfAborted();
    await progressSent;
    await report(job, attempt, "done", { content_type: "application/json", rows: rows.length, bytes: Buffer.byteLength(body) });
    await msg.ackAck();
    log(`${key} attempt ${attempt} done: ${rows.length} rows`);
  } catch (err) {
    const reason = abort.signal.aborted ? abort.signal.reason : err;
    const code = reason instanceof JobError ? reason.code : "internal";
    const final = (reason instanceof JobError && !reason.retryable) || attempt >= job.max_attempts;
    await progressSent;
    try {
      await fail({ code, message: reason?.message ?? String(reason) }, final);
    } catch (err2) {
      log(`${key}: report failure: ${err2.message}`);
    }
  } finally {
    clearInterval(working);
    clearTimeout(timer);
    cancel.unsubscribe();
    running.delete(key);
    if (conn) conn.closeSync();
    if (db) db.closeSync();
    if (copy) await copy.remove();
  }
}

const consumers = [];
for (const route of routes()) consumers.push([route, await bind(route)]);
await heartbeat();
const beating = setInterval(() => heartbeat().catch((err) => log(`heartbeat: ${err.message}`)), heartbeatEvery);
const loops = consumers.map(([route, c]) => pull(route, c));
log(`ready: ${slots} slots, routes ${consumers.map(([r]) => r).join(" ")}`);

// A clean stop: fetch nothing more, let running jobs end (those still
// running after the grace fail unavailable and go back to the queue),
// delete the heartbeat and drain the connection.
let stopped;
async function stop(signal) {
  if (stopped) return stopped;
  stopped = (async () => {
    log(`${signal}: stopping`);
    stopping = true;
    const grace = setTimeout(() => {
      for (const abort of running.values()) abort.abort(new JobError("unavailable", `worker ${id} stopped`));
    }, stopGrace);
    await Promise.all(loops);
    while (running.size > 0) await sleep(50);
    clearTimeout(grace);
    clearInterval(beating);
    await kv.delete(id);
    await nc.drain();
    log("stopped");
  })();
  return stopped;
}
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => stop(signal).then(() => process.exit(0), (err) => fatal(`stop: ${err.message}`)));
}
