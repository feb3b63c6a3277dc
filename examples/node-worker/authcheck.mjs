// authcheck.mjs connects to teatree's NATS as a principal of its access
// policy, with a user and password and the principal's inbox prefix, and
// shows what the policy lets a reader do: a query of its model answers,
// a mutation is refused with a permissions violation. The end-to-end
// tests run it (test/e2e/natsauth_test.go); the user is the principal.
//
//   node authcheck.mjs --nats nats://127.0.0.1:4222 --user reader --password ... --model sales
import { connect } from "@nats-io/transport-node";
import { parseArgs } from "node:util";

const { values: opt } = parseArgs({
  options: {
    nats: { type: "string", default: "nats://127.0.0.1:4222" },
    user: { type: "string" },
    password: { type: "string", default: process.env.TEATREE_NATS_PASSWORD },
    model: { type: "string" },
  },
});

const nc = await connect({
  servers: opt.nats.split(","),
  user: opt.user,
  pass: opt.password,
  // Replies come to _INBOX_<principal>: the only inbox it may read.
  inboxPrefix: `_INBOX_${opt.user}`,
});

const violations = [];
(async () => {
  for await (const s of nc.status()) {
    if (s.type === "error" && s.error?.name === "PermissionViolationError") {
      violations.push(s.error);
    }
  }
})();

const reply = await nc.request(`tt.query.${opt.model}`, JSON.stringify({ sql: "select 1" }), { timeout: 30000 });
console.log(`query answered: ${reply.data.length} bytes`);

const subject = `tt.mut.${opt.model}.sql.${opt.user}`;
nc.publish(subject, "{}");
// The server refuses a publish before it answers the flush's PING.
await nc.flush();
const deadline = Date.now() + 30000;
while (!violations.some((e) => e.subject === subject) && Date.now() < deadline) {
  await new Promise((r) => setTimeout(r, 10));
}
const refused = violations.find((e) => e.subject === subject);
if (!refused) {
  console.log(`mutation not refused: ${subject}`);
  await nc.close();
  process.exit(1);
}
console.log(`mutation refused: ${refused.message}`);
await nc.close();
