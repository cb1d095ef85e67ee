// `nats sub` as a person runs it, on the official JavaScript client: every message on a
// subject with its headers, the way the nats CLI prints them. Usage: node nats-sub.mjs URL SUBJECT
import { connect } from "@nats-io/transport-node";

const [url, subject] = process.argv.slice(2);
const nc = await connect({ servers: url });
const sub = nc.subscribe(subject);
await nc.flush();
console.log(`Subscribing on ${subject}`);
let n = 0;
for await (const m of sub) {
  n += 1;
  const lines = [`[#${n}] Received on "${m.subject}"`];
  for (const [name, values] of m.headers ?? []) {
    lines.push(`${name}: ${values.join(", ")}`);
  }
  lines.push(`(${m.data.length} bytes)`, "");
  console.log(lines.join("\n"));
}
