// The handlers this worker serves. A handler gets the call's arguments and
// a context (the job's input as a read-only DuckDB connection, the attempt,
// an AbortSignal that fires on cancel, deadline or stop, and progress) and
// returns the result rows: an array of plain objects.
import { setTimeout as sleep } from "node:timers/promises";

// JobError is a failure with a contract error code. retryable false makes
// the attempt final whatever the attempts left.
export class JobError extends Error {
  constructor(code, message, { retryable = true } = {}) {
    super(message);
    this.code = code;
    this.retryable = retryable;
  }
}

const tableName = /^[a-z_][a-z0-9_]{0,62}$/;

function invalid(message) {
  return new JobError("invalid_argument", message, { retryable: false });
}

function identifier(args, name) {
  const v = args[name];
  if (typeof v !== "string" || !tableName.test(v) || v.startsWith("_tt")) {
    throw invalid(`${name}: want a table or column name, got ${JSON.stringify(v)}`);
  }
  return `"${v}"`;
}

function count(args, name, { min = 0, max = Number.MAX_SAFE_INTEGER } = {}) {
  const v = args[name];
  if (!Number.isInteger(v) || v < min || v > max) {
    throw invalid(`${name}: want an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);
  }
  return v;
}

// query runs sql on the job's input. A query that names a table or column
// the version does not have fails invalid_argument: retrying cannot help.
async function query(ctx, sql) {
  const conn = await ctx.input();
  try {
    return await conn.runAndReadAll(sql);
  } catch (err) {
    if (/^(Catalog|Binder) Error/.test(err.message)) throw invalid(err.message);
    throw err;
  }
}

export const handlers = {
  // row_count: {table} → [{table, rows}].
  async row_count(args, ctx) {
    const table = identifier(args, "table");
    const rows = (await query(ctx, `SELECT count(*)::BIGINT AS n FROM ${table}`)).getRowObjectsJS();
    return [{ table: args.table, rows: Number(rows[0].n) }];
  },

  // top: {table, column, n} → the n rows with the largest column.
  async top(args, ctx) {
    const table = identifier(args, "table");
    const column = identifier(args, "column");
    const n = count(args, "n", { min: 1, max: 1_000_000 });
    const reader = await query(ctx, `SELECT * FROM ${table} ORDER BY ${column} DESC NULLS LAST LIMIT ${n}`);
    return reader.getRowObjectsJson();
  },

  // slow (for tests): {steps, ms} → sleeps ms per step, reporting progress
  // after each, and stops as soon as it is told to.
  async slow(args, ctx) {
    const steps = count(args, "steps", { min: 1, max: 10_000 });
    const ms = count(args, "ms", { max: 3_600_000 });
    for (let i = 1; i <= steps; i++) {
      await sleep(ms, undefined, { signal: ctx.signal });
      ctx.progress(i / steps, `${i} of ${steps} steps`);
    }
    return [{ steps }];
  },

  // fail (for tests): {times} → fails attempts 1 to times, then succeeds.
  async fail(args, ctx) {
    const times = count(args, "times", { max: 10 });
    if (ctx.attempt <= times) {
      throw new JobError("internal", `attempt ${ctx.attempt} fails on purpose (${times} to fail)`);
    }
    return [{ attempt: ctx.attempt }];
  },
};
