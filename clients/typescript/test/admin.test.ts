// End-to-end administration: the first admin made with the real binary's
// CLI on the server's database, then the admin API and the security log
// through @latchkey/client.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createLatchkey, LatchkeyError, type AdminUser, type Event } from "@latchkey/client";
import { startServer, type Server } from "./server.js";

let server: Server;
before(async () => {
  server = await startServer();
});
after(async () => {
  assert.equal(await server.stop(), 0, "latchkey exits 0 on SIGTERM");
});

describe("administration", () => {
  let admin: ReturnType<typeof createLatchkey>;
  let victim: ReturnType<typeof createLatchkey>;
  let adminId: string;
  let victimId: string;

  before(async () => {
    admin = createLatchkey({ baseUrl: server.baseUrl });
    victim = createLatchkey({ baseUrl: server.baseUrl });
    const a = await admin.session.register({ name: "Root" });
    const v = await victim.session.register({ name: "Victim" });
    assert.ok("user" in a && "user" in v);
    adminId = a.user.id;
    victimId = v.user.id;
  });

  it("is refused to a non-admin", async () => {
    const err = await admin.client.GET("/admin/users").then(
      () => assert.fail("a non-admin listed the users"),
      (e: unknown) => e,
    );
    assert.ok(err instanceof LatchkeyError);
    assert.equal(err.code, "FORBIDDEN");
    assert.equal(err.status, 403);
  });

  it("grants the first admin from the command line", () => {
    const r = server.cli("admin", "grant", adminId);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /is now an admin/);
    const unknown = server.cli("admin", "grant", "nobody@example.com");
    assert.notEqual(unknown.status, 0);
    assert.match(unknown.stderr, /no account has the id, email or username "nobody@example.com"/);
  });

  it("finds and disables a user, who is signed out at once", async () => {
    const { data: page } = await admin.client.GET("/admin/users", { params: { query: { q: "victim", limit: 10 } } });
    const found: AdminUser | undefined = page?.users.find((u) => u.id === victimId);
    assert.ok(found, "the search finds the victim");
    assert.equal(page?.next_cursor, undefined, "one page only");
    assert.equal(found.live_sessions, 1);

    const { data: changed } = await admin.client.PATCH("/admin/users/{id}", {
      params: { path: { id: victimId } },
      body: { disabled: true },
    });
    assert.equal(changed?.disabled, true);
    assert.equal(changed?.live_sessions, 0);

    const err = await victim.client.GET("/me").then(
      () => assert.fail("a disabled account is still signed in"),
      (e: unknown) => e,
    );
    assert.ok(err instanceof LatchkeyError);
    assert.equal(err.code, "UNAUTHENTICATED");
    assert.equal(await victim.session.tokens(), null, "the refused refresh ended the session");
  });

  it("reads the security log", async () => {
    const { data } = await admin.client.GET("/admin/events", { params: { query: { user_id: victimId } } });
    const types = data!.events.map((e: Event) => e.type);
    assert.deepEqual(types, ["account_disabled", "account_created"]);
    assert.equal(data!.events[0]!.actor_id, adminId);

    const { data: mine, response } = await admin.client.GET("/me/events", { params: { query: { limit: 1 } } });
    assert.equal(response.headers.get("Cache-Control"), "no-store");
    assert.equal(mine!.events.length, 1);
    assert.equal(mine!.events[0]!.type, "admin_granted");
    assert.ok(mine!.next_cursor, "more than one page");
    const { data: next } = await admin.client.GET("/me/events", { params: { query: { cursor: mine!.next_cursor! } } });
    assert.deepEqual(
      next!.events.map((e: Event) => e.type),
      ["account_created"],
    );
  });
});
