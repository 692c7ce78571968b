// A GitHub webhook receiver built on GitHub's own verifier
// (@octokit/webhooks-methods' verify), for tests/webhook.rs.
//
//   node tests/peers/github_peer.mjs --secret S [--lifetime SECONDS]
//
// Answers 401 to a delivery whose X-Hub-Signature-256 the library refuses
// (400 with no signature header, as @octokit/webhooks' middleware does), 200
// to the rest, processes each delivery once by its X-GitHub-Delivery, and
// counts it all: GET /stats. Prints "listening PORT" once ready; exits when
// its standard input closes or after --lifetime seconds. A missing package is
// named on stderr with how to install it (exit 3).

import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
let verify;
try {
  ({ verify } = await import("@octokit/webhooks-methods"));
} catch (e) {
  process.stderr.write(
    `the npm package @octokit/webhooks-methods is not installed (${e.code ?? e.message}): run .ci/run, ` +
      `or npm install --prefix ${here} --no-save @octokit/webhooks-methods\n`,
  );
  process.exit(3);
}

const args = process.argv.slice(2);
const arg = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};
const secret = arg("--secret");
const lifetime = Number(arg("--lifetime", "300"));
if (!secret) {
  process.stderr.write("give --secret\n");
  process.exit(2);
}

const counts = {
  received: 0,
  accepted: 0,
  processed: 0,
  duplicates: 0,
  rejected: {},
  errors: 0,
};
const seen = new Set();

const reject = (res, status, reason) => {
  counts.rejected[reason] = (counts.rejected[reason] ?? 0) + 1;
  answer(res, status, { error: reason });
};

function answer(res, status, value) {
  const body = JSON.stringify(value);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
  });
  res.end(body);
}

const server = http.createServer((req, res) => {
  if (req.method === "GET" && req.url === "/stats") {
    const rejected_total = Object.values(counts.rejected).reduce((a, b) => a + b, 0);
    return answer(res, 200, { ...counts, rejected_total });
  }
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", async () => {
    counts.received += 1;
    const payload = Buffer.concat(chunks).toString("utf8");
    const signature = req.headers["x-hub-signature-256"];
    if (!signature) {
      return reject(res, 400, "missing_header");
    }
    let ok;
    try {
      ok = await verify(secret, payload, signature);
    } catch (e) {
      counts.errors += 1;
      return answer(res, 500, { error: String(e) });
    }
    if (!ok) {
      return reject(res, 401, "signature_mismatch");
    }
    counts.accepted += 1;
    const id = req.headers["x-github-delivery"];
    const fresh = !seen.has(id);
    seen.add(id);
    if (fresh) counts.processed += 1;
    else counts.duplicates += 1;
    answer(res, 200, { received: true, duplicate: !fresh });
  });
});
server.keepAliveTimeout = 60_000;

server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
setTimeout(() => process.exit(0), lifetime * 1000).unref();
