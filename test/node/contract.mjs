// Drives teatree's wire contract from Node.js, with the public npm clients
// and nothing of teatree's: NATS JetStream to publish mutations and read
// notifications, HTTP for the model and the downloads, and DuckDB's Node
// API to open the published files read-only.
//
// Usage: node contract.mjs NATS_URL HTTP_URL WORK_DIR   (exits non-zero on any failure)
import { connect, headers } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import { DuckDBInstance } from "@duckdb/node-api";
import { createHash } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import assert from "node:assert/strict";

const [natsURL, httpURL, dir] = process.argv.slice(2);
const model = "nodejs";

async function http(method, path, body) {
  const res = await fetch(httpURL + path, {
    method,
    headers: body ? { "Content-Type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, body: Buffer.from(await res.arrayBuffer()) };
}

const created = await http("POST", "/v1/models", { id: model, snapshot: { interval_ms: 100 } });
assert.equal(created.status, 201, created.body.toString());

const nc = await connect({ servers: natsURL });
const js = jetstream(nc);
const enc = new TextEncoder();

// Subscribe before publishing: notifications also reach live subscribers.
const sub = nc.subscribe(`tt.ntf.${model}.req.>`);
const seen = new Map();
const done = (async () => {
  for await (const m of sub) {
    seen.set(m.headers.get("Tt-Request-Id"), m);
    if (seen.size === 4) break;
  }
})();

async function mutate(id, table, contentType, body) {
  const h = headers();
  h.set("Nats-Msg-Id", id);
  h.set("Tt-Table", table);
  h.set("Content-Type", contentType);
  const ack = await js.publish(`tt.mut.${model}.append`, enc.encode(body), { headers: h });
  return ack.seq;
}

const seqs = {};
for (let i = 1; i <= 3; i++) {
  seqs[`n${i}`] = await mutate(`n${i}`, "events", "application/x-ndjson", `{"k":${i},"label":"e${i}"}\n`);
}
seqs.bad = await mutate("bad", "events", "application/x-ndjson", `{"k":9,"colour":"red"}\n`);

let timer;
await Promise.race([done, new Promise((_, rej) => { timer = setTimeout(() => rej(new Error("notifications timed out")), 30000); })]);
clearTimeout(timer);
for (let i = 1; i <= 3; i++) {
  const m = seen.get(`n${i}`);
  assert.equal(m.headers.get("Tt-Status"), "applied");
  assert.equal(m.headers.get("Tt-Model"), model);
  assert.equal(m.headers.get("Tt-Seq"), String(seqs[`n${i}`]));
  assert.equal(m.headers.get("Tt-Page"), "1");
  assert.equal(m.headers.get("Tt-Pages"), "1");
  const st = JSON.parse(new TextDecoder().decode(m.data));
  assert.equal(st.status, "applied");
  assert.equal(st.seq, seqs[`n${i}`], "seq is a JSON number");
  assert.equal(st.rows_affected, 1);
  assert.equal(st.request_id, `n${i}`);
}
const bad = JSON.parse(new TextDecoder().decode(seen.get("bad").data));
assert.equal(bad.status, "failed");
assert.equal(bad.error.code, "schema_mismatch");

// Wait for a version that holds every applied request, then download it.
let manifest;
for (let i = 0; i < 300; i++) {
  const r = await http("GET", `/v1/models/${model}/snapshots`);
  const list = JSON.parse(r.body.toString());
  if (list.snapshots?.length && list.snapshots[0].applied_seq >= seqs.n3) {
    manifest = list.snapshots[0];
    break;
  }
  await new Promise((res) => setTimeout(res, 100));
}
assert.ok(manifest, "no snapshot with every request");

async function download(file, ref) {
  const r = await http("GET", `/v1/models/${model}/snapshots/${manifest.version}/${file}`);
  assert.equal(r.status, 200);
  assert.equal(createHash("sha256").update(r.body).digest("hex"), ref.sha256);
  assert.equal(r.body.length, ref.bytes);
  const path = join(dir, file);
  await writeFile(path, r.body);
  return path;
}
const dbPath = await download("model.duckdb", manifest.duckdb);
const events = manifest.tables.find((t) => t.name === "events");
const pqPath = await download("events.parquet", events.parquet);

const db = await DuckDBInstance.create(dbPath, { access_mode: "READ_ONLY" });
const conn = await db.connect();
let rows = (await conn.runAndReadAll("SELECT count(*)::INTEGER AS n, sum(k)::INTEGER AS s FROM events")).getRowObjects();
assert.deepEqual(rows, [{ n: 3, s: 6 }]);
rows = (await conn.runAndReadAll(`SELECT count(*)::INTEGER AS n FROM read_parquet('${pqPath}')`)).getRowObjects();
assert.deepEqual(rows, [{ n: 3 }]);
conn.closeSync();

await nc.drain();
console.log("node contract check: ok");
