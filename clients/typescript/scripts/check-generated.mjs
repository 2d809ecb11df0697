// Fails when src/schema.ts is not what openapi.yaml generates today.
import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const committed = fileURLToPath(new URL("../src/schema.ts", import.meta.url));
const dir = await mkdtemp(join(tmpdir(), "latchkey-schema-"));
try {
  const fresh = join(dir, "schema.ts");
  execFileSync(process.execPath, [fileURLToPath(new URL("generate.mjs", import.meta.url)), fresh], { stdio: "inherit" });
  const [want, got] = await Promise.all([readFile(fresh, "utf8"), readFile(committed, "utf8").catch(() => "")]);
  if (want !== got) {
    try {
      execFileSync("diff", ["-u", committed, fresh], { stdio: "inherit" });
    } catch {
      // diff exits 1 when the files differ; its output is the point.
    }
    console.error("clients/typescript/src/schema.ts is stale: run `npm run generate` (or `make generate`) and commit it");
    process.exitCode = 1;
  } else {
    console.log("src/schema.ts is up to date with openapi.yaml");
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
