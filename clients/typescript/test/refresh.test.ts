// Single-flight refresh against the real binary, with 1 s access tokens.
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { createApiClient, createLatchkey, LatchkeyError } from "@latchkey/client";
import { countingFetch, startServer, type Server } from "./server.js";

let server: Server;
before(async () => {
  server = await startServer({ LATCHKEY_ACCESS_TOKEN_TTL: "1s" });
});
after(async () => {
  assert.equal(await server.stop(), 0, "latchkey exits 0 on SIGTERM");
});

/**
 * Waits until the server refuses this access token (its 1 s lifetime plus
 * the server's 5 s leeway on exp), asking with a client that has no session
 * and so never refreshes.
 */
async function waitUntilExpired(accessToken: string): Promise<void> {
  const probe = createApiClient({ baseUrl: server.baseUrl, headers: { Authorization: `Bearer ${accessToken}` } });
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      await probe.GET("/me");
    } catch (err) {
      if (err instanceof LatchkeyError && err.code === "UNAUTHENTICATED") return;
      throw err;
    }
    assert.ok(Date.now() < deadline, "the access token never expired");
    await sleep(250);
  }
}

describe("single-flight refresh", () => {
  it("five calls on an expired token: one refresh, all five retried and answered", async () => {
    const net = countingFetch();
    const { client, session } = createLatchkey({ baseUrl: server.baseUrl, fetch: net.fetch });
    const { user, tokens } = (await session.register({ name: "Ada" })) as { user: { id: string }; tokens: { access_token: string } };
    await waitUntilExpired(tokens.access_token);

    net.calls.length = 0;
    // The last call's 401 arrives after the refresh is over: it must retry
    // with the new token rather than refresh again.
    net.delay = { index: 4, ms: 500 };
    const answers = await Promise.all(Array.from({ length: 5 }, () => client.GET("/me")));
    for (const { data } of answers) assert.equal(data?.id, user.id);
    assert.equal(net.count("POST /api/auth/refresh"), 1, net.calls.join("\n"));
    assert.equal(net.count("GET /api/me"), 10, "each call: once refused, once retried");
    const now = await session.tokens();
    assert.notEqual(now?.access_token, tokens.access_token);
  });

  it("concurrent explicit refreshes share one request", async () => {
    const net = countingFetch();
    const { session } = createLatchkey({ baseUrl: server.baseUrl, fetch: net.fetch });
    await session.register({ name: "Grace" });
    const pairs = await Promise.all([session.refresh(), session.refresh(), session.refresh()]);
    assert.equal(net.count("POST /api/auth/refresh"), 1);
    assert.equal(new Set(pairs.map((p) => p.refresh_token)).size, 1);
    // Later, a new refresh goes out again.
    await session.refresh();
    assert.equal(net.count("POST /api/auth/refresh"), 2);
  });
});
