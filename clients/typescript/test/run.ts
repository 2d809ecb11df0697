// Global setup of the client tests: builds the latchkey binary once (or
// takes LATCHKEY_TEST_BINARY when set), runs every *.test.js beside this
// file with node's test runner (each test file starts the servers it needs
// from that binary), then cleans up. Arguments go to `node --test`.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildBinary } from "./server.js";

const here = fileURLToPath(new URL(".", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "latchkey-client-test-"));
let status = 1;
try {
  let bin = process.env.LATCHKEY_TEST_BINARY;
  if (!bin) {
    const started = Date.now();
    bin = buildBinary(dir);
    console.log(`built ${bin} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }
  const files = readdirSync(here)
    .filter((f) => f.endsWith(".test.js"))
    .map((f) => join(here, f));
  const r = spawnSync(process.execPath, ["--test", "--test-concurrency=2", ...process.argv.slice(2), ...files], {
    stdio: "inherit",
    env: { ...process.env, LATCHKEY_TEST_BINARY: bin },
  });
  status = r.status ?? 1;
} finally {
  rmSync(dir, { recursive: true, force: true });
}
process.exit(status);
