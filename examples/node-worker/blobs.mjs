// A job's blobs: its inputs are read and its result written through the
// URLs the job carries, file:// (a blob directory this process can see)
// or http(s):// (pre-signed S3 requests).
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

// localCopy returns a path of the blob at url on this machine and a
// function that removes it when it was downloaded.
export async function localCopy(url, signal) {
  const u = new URL(url);
  if (u.protocol === "file:") {
    return { path: fileURLToPath(u), remove: async () => {} };
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    throw new Error(`input ${u.protocol} URL: want file, http or https`);
  }
  const res = await fetch(url, { signal });
  if (!res.ok) {
    throw new Error(`GET input: HTTP ${res.status}`);
  }
  const dir = await mkdtemp(join(tmpdir(), "tt-node-worker-"));
  const path = join(dir, "model.duckdb");
  await writeFile(path, Buffer.from(await res.arrayBuffer()));
  return { path, remove: () => rm(dir, { recursive: true, force: true }) };
}

// writeResult stores body (a JSON array) at url.
export async function writeResult(url, body, signal) {
  const u = new URL(url);
  if (u.protocol === "file:") {
    const path = fileURLToPath(u);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, body, { signal });
    return;
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    throw new Error(`result ${u.protocol} URL: want file, http or https`);
  }
  const res = await fetch(url, { method: "PUT", body, headers: { "Content-Type": "application/json" }, signal });
  if (!res.ok) {
    throw new Error(`PUT result: HTTP ${res.status}`);
  }
}
