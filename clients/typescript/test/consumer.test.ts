// The package as a strict consumer sees it: consumer/strict-consumer.ts,
// which must use every export, compiles with tsc --strict (plus stricter
// flags, and the package's own declarations checked), then runs against
// the real binary; require() works (Node >= 20.19), and the packed package
// carries its LICENSE.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { after, before, describe, it } from "node:test";
import { repoRoot, startServer, type Server } from "./server.js";

const pkg = join(repoRoot, "clients", "typescript");
const consumer = join(pkg, "consumer", "strict-consumer.ts");
const tsc = createRequire(join(pkg, "package.json")).resolve("typescript/bin/tsc");
const strictFlags = [
  "--strict",
  "--noUncheckedIndexedAccess",
  "--exactOptionalPropertyTypes",
  "--noImplicitReturns",
  "--module", "nodenext",
  "--moduleResolution", "nodenext",
  "--target", "es2022",
  "--lib", "es2022,dom",
  "--types", "node",
];

function compile(...extra: string[]) {
  const r = spawnSync(process.execPath, [tsc, ...strictFlags, ...extra, consumer], { cwd: pkg, encoding: "utf8" });
  assert.equal(r.status, 0, `tsc ${extra.join(" ")} failed:\n${r.stdout}${r.stderr}`);
}

let server: Server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server.stop();
});

describe("a strict consumer", () => {
  it("uses every export of the package", () => {
    const dts = readFileSync(join(pkg, "dist", "index.d.ts"), "utf8");
    const names = new Set<string>();
    for (const m of dts.matchAll(/export (?:type )?\{([^}]*)\}/g)) {
      for (const part of m[1]!.split(",")) {
        const name = part.trim().replace(/^type\s+/, "").split(/\s+as\s+/).pop()!.trim();
        if (name) names.add(name);
      }
    }
    for (const m of dts.matchAll(/export (?:type|declare function|declare const|declare class|interface) (\w+)/g)) names.add(m[1]!);
    assert.ok(names.size > 20, `found only ${[...names].join(", ")}`);
    const source = readFileSync(consumer, "utf8");
    const unused = [...names].filter((n) => !new RegExp(`\\b${n}\\b`).test(source));
    assert.deepEqual(unused, [], "exports the strict consumer does not use");
  });

  it("compiles with tsc --strict --noEmit, the package's declarations included", () => {
    compile("--noEmit", "--skipLibCheck", "false");
  });

  it("runs against the real binary", async () => {
    const out = join(pkg, "build", "consumer");
    compile("--outDir", out, "--rootDir", join(pkg, "consumer"), "--skipLibCheck");
    // (Typed here by hand: the consumer lies outside this build.)
    const mod = (await import(pathToFileURL(join(out, "strict-consumer.js")).href)) as {
      run(baseUrl: string): Promise<{
        secretUser: { account_type: string };
        sessions: unknown[];
        passwordOutcome: boolean;
        challengeOrTokens: string;
        errorCode: string;
        fields: { field: string }[];
        rawErrorStatus: number;
      }>;
    };
    const report = await mod.run(server.baseUrl);
    assert.equal(report.secretUser.account_type, "secret");
    assert.equal(report.sessions.length, 2);
    assert.equal(report.passwordOutcome, true);
    assert.equal(report.challengeOrTokens, "tokens");
    assert.equal(report.errorCode, "INVALID_REQUEST");
    assert.ok(report.fields.some((f) => f.field === "email"), JSON.stringify(report.fields));
    assert.equal(report.rawErrorStatus, 401);
  });
});

describe("register() narrows on signedIn", () => {
  let confirming: Server;
  before(async () => {
    confirming = await startServer({ LATCHKEY_EMAIL_CONFIRMATION: "required" });
  });
  after(async () => {
    await confirming.stop();
  });

  it("a password account waiting for its confirmation: signedIn false, no tokens stored", async () => {
    const { createLatchkey } = await import("@latchkey/client");
    const lk = createLatchkey({ baseUrl: confirming.baseUrl });
    const outcome = await lk.session.register({ email: "pending@example.com", password: "correct horse battery staple" });
    assert.equal(outcome.signedIn, false);
    if (!outcome.signedIn) assert.equal(outcome.code, "PENDING_CONFIRMATION");
    assert.equal(await lk.session.tokens(), null);
    const secret = await lk.session.register({ name: "Ada" });
    assert.equal(secret.signedIn, true);
    assert.equal(typeof secret.secret, "string");
    assert.deepEqual(await lk.session.tokens(), secret.tokens);
  });
});

describe("the package", () => {
  it("loads with require() (the exports default condition)", () => {
    const r = spawnSync(
      process.execPath,
      ["-e", "const l = require('@latchkey/client'); if (typeof l.createLatchkey !== 'function' || typeof l.LatchkeyError !== 'function') process.exit(3)"],
      { cwd: pkg, encoding: "utf8" },
    );
    assert.equal(r.status, 0, r.stderr);
  });

  it("ships its LICENSE", () => {
    const r = spawnSync("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], { cwd: pkg, encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    const [info] = JSON.parse(r.stdout) as [{ files: { path: string }[] }];
    const files = info.files.map((f) => f.path);
    assert.ok(files.includes("LICENSE"), files.join(", "));
    assert.ok(files.includes("dist/index.js") && files.includes("dist/index.d.ts"), files.join(", "));
    assert.match(readFileSync(join(pkg, "LICENSE"), "utf8"), /Apache License\s+Version 2\.0/);
  });
});
