// CORS end-to-end: the binary started with LATCHKEY_CORS_ORIGINS, driven
// by @latchkey/client with the Origin header a browser app on another
// origin would send.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createLatchkey } from "@latchkey/client";
import { startServer, type Server } from "./server.js";

const APP = "https://app.example.com";

let server: Server;
before(async () => {
  server = await startServer({ LATCHKEY_CORS_ORIGINS: APP });
});
after(async () => {
  assert.equal(await server.stop(), 0, "latchkey exits 0 on SIGTERM");
});

describe("a browser app on another origin", () => {
  const seen: Response[] = [];
  // What a browser adds to every cross-origin call of the app.
  const fromApp = async (request: Request): Promise<Response> => {
    const headers = new Headers(request.headers);
    headers.set("Origin", APP);
    const response = await fetch(new Request(request, { headers }));
    seen.push(response);
    return response;
  };

  it("passes the preflight for a bearer call", async () => {
    const r = await fetch(`${server.baseUrl}/me`, {
      method: "OPTIONS",
      headers: { Origin: APP, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization" },
    });
    assert.equal(r.status, 204);
    assert.equal(r.headers.get("Access-Control-Allow-Origin"), APP);
    assert.match(r.headers.get("Access-Control-Allow-Headers") ?? "", /authorization/i);
    assert.equal(r.headers.get("Access-Control-Allow-Credentials"), null, "no credentials: the API takes a bearer, not cookies");
  });

  it("registers and reads its profile, every answer readable by the app", async () => {
    const { client, session } = createLatchkey({ baseUrl: server.baseUrl, fetch: fromApp });
    await session.register({ name: "Ada" });
    const { data: me } = await client.GET("/me");
    assert.equal(me?.name, "Ada");
    assert.ok(seen.length >= 2);
    for (const r of seen) {
      assert.equal(r.headers.get("Access-Control-Allow-Origin"), APP);
      assert.match(r.headers.get("Vary") ?? "", /Origin/);
      assert.match(r.headers.get("Access-Control-Expose-Headers") ?? "", /X-Request-Id/);
    }
  });
});
