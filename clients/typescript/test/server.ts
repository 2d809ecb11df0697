// Test helpers: the real latchkey binary on a free port, and a fetch that
// counts what the client sends.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root, from build/test/ where this file runs compiled. */
export const repoRoot = fileURLToPath(new URL("../../../../", import.meta.url));

/**
 * Builds the latchkey binary into dir (`go build` from the repository
 * root) and answers its path.
 */
export function buildBinary(dir: string): string {
  const bin = join(dir, "latchkey");
  const go = process.env.GO ?? "go";
  const r = spawnSync(go, ["build", "-o", bin, "./cmd/latchkey"], { cwd: repoRoot, stdio: "inherit" });
  if (r.status !== 0) throw new Error(`${go} build ./cmd/latchkey failed (${r.error?.message ?? `exit ${r.status}`})`);
  return bin;
}

let builtBinary: string | undefined;

// binary answers the binary that test/run.ts built, or builds one when a
// test file runs on its own.
function binary(): string {
  if (process.env.LATCHKEY_TEST_BINARY) return process.env.LATCHKEY_TEST_BINARY;
  if (!builtBinary) {
    const dir = mkdtempSync(join(tmpdir(), "latchkey-bin-"));
    process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
    builtBinary = buildBinary(dir);
  }
  return builtBinary;
}

/** A running latchkey. */
export interface Server {
  /** The API base URL, `/api` included. */
  readonly baseUrl: string;
  /**
   * Runs `latchkey <args…>` on this server's database (an operator
   * command such as `admin grant`) and answers its exit code and output.
   */
  cli(...args: string[]): { status: number | null; stdout: string; stderr: string };
  /** Stops it with SIGTERM and answers its exit code. */
  stop(): Promise<number | null>;
}

/**
 * Starts latchkey on a free loopback port with a temporary data dir and
 * rate limits off; env adds or overrides LATCHKEY_* settings.
 */
export async function startServer(env: Record<string, string> = {}): Promise<Server> {
  const dataDir = mkdtempSync(join(tmpdir(), "latchkey-data-"));
  // Only the settings given here: none of the caller's LATCHKEY_* leak in.
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("LATCHKEY_")));
  const child = spawn(binary(), ["serve"], {
    env: {
      ...base,
      LATCHKEY_ADDR: "127.0.0.1:0",
      LATCHKEY_DATA_DIR: dataDir,
      LATCHKEY_RATE_LIMITS: "off",
      LATCHKEY_LOG_FORMAT: "json",
      LATCHKEY_LOG_LEVEL: "warn",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (s: string) => (stderr += s));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));

  const origin = await new Promise<string>((resolve, reject) => {
    let stdout = "";
    const timer = setTimeout(() => fail("no 'serving on' line within 20 s"), 20_000);
    function fail(why: string) {
      clearTimeout(timer);
      child.kill("SIGKILL");
      reject(new Error(`latchkey did not start: ${why}\n${stderr}`));
    }
    child.stdout.setEncoding("utf8").on("data", (s: string) => {
      stdout += s;
      // "Latchkey is serving on http://localhost:PORT — API docs at …"
      const m = /serving on http:\/\/[^:\s]+:(\d+)/.exec(stdout);
      if (m) {
        clearTimeout(timer);
        resolve(`http://127.0.0.1:${m[1]}`);
      }
    });
    child.once("exit", (code) => fail(`exited with ${code}`));
  });

  return {
    baseUrl: `${origin}/api`,
    cli(...args: string[]) {
      const r = spawnSync(binary(), args, {
        env: { ...base, LATCHKEY_DATA_DIR: dataDir, ...env },
        encoding: "utf8",
      });
      return { status: r.status, stdout: r.stdout, stderr: r.stderr };
    },
    async stop() {
      child.kill("SIGTERM");
      const code = await exited;
      rmSync(dataDir, { recursive: true, force: true });
      return code;
    },
  };
}

/**
 * A fetch that records "METHOD /path" of every request before sending it.
 * `delay`, when set, holds the answer to the request with this index in
 * `calls` for that many milliseconds.
 */
export function countingFetch() {
  const calls: string[] = [];
  const net = {
    calls,
    delay: undefined as { index: number; ms: number } | undefined,
    fetch: async (request: Request): Promise<Response> => {
      const index = calls.push(`${request.method} ${new URL(request.url).pathname}`) - 1;
      const response = await fetch(request);
      if (net.delay?.index === index) await new Promise((r) => setTimeout(r, net.delay!.ms));
      return response;
    },
    /** How many requests matched "METHOD /path". */
    count: (call: string) => calls.filter((c) => c === call).length,
  };
  return net;
}

/** A valid 1×1 PNG: one red RGB pixel. */
export const PNG_1X1 = Uint8Array.from(
  Buffer.from(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR42mP4z8AAAAMBAQD3A0FDAAAAAElFTkSuQmCC",
    "base64",
  ),
);
