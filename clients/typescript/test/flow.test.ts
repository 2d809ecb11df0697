// End-to-end: the real binary, driven only through @latchkey/client.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createApiClient, createLatchkey, LatchkeyError, type TokenPair } from "@latchkey/client";
import { countingFetch, PNG_1X1, startServer, type Server } from "./server.js";

let server: Server;
before(async () => {
  server = await startServer();
});
after(async () => {
  assert.equal(await server.stop(), 0, "latchkey exits 0 on SIGTERM");
});

/** Asserts that call rejects with a LatchkeyError of this code and status. */
async function rejectsWith(call: Promise<unknown>, code: string, status: number): Promise<LatchkeyError> {
  const err = await call.then(
    () => assert.fail(`expected ${code}, the call succeeded`),
    (e: unknown) => e,
  );
  assert.ok(err instanceof LatchkeyError, `expected a LatchkeyError, got ${String(err)}`);
  assert.equal(err.code, code, err.message);
  assert.equal(err.status, status);
  return err;
}

describe("secret account", () => {
  const net = countingFetch();
  let lk: ReturnType<typeof createLatchkey>;
  let secret: string;
  let userId: string;
  let first: TokenPair;

  before(() => {
    lk = createLatchkey({ baseUrl: server.baseUrl, fetch: net.fetch });
  });

  it("registers and is signed in", async () => {
    const result = await lk.session.register({ name: "Ada" });
    assert.ok("secret" in result && result.secret, "a secret account gets its secret");
    secret = result.secret;
    userId = result.user.id;
    assert.equal(result.user.account_type, "secret");
    assert.equal(result.user.email, null);
    assert.deepEqual(await lk.session.tokens(), result.tokens);
  });

  it("signs in with the secret: a new session", async () => {
    const before = await lk.session.tokens();
    const result = await lk.session.signIn({ secret });
    assert.equal(result.two_factor_required, false);
    first = (await lk.session.tokens())!;
    assert.equal(first.access_token, result.access_token);
    assert.notEqual(first.session_id, before?.session_id);
  });

  it("reads and updates the profile with the bearer attached", async () => {
    const { data: me } = await lk.client.GET("/me");
    assert.equal(me?.id, userId);
    assert.equal(me?.name, "Ada");
    const { data: updated } = await lk.client.PATCH("/me", { body: { bio: "Analyst", timezone: "Europe/London" } });
    assert.equal(updated?.bio, "Analyst");
    assert.equal(updated?.timezone, "Europe/London");
  });

  it("uploads an avatar and reads it back", async () => {
    await lk.client.POST("/me/avatar", {
      body: new Blob([PNG_1X1], { type: "image/png" }),
      headers: { "Content-Type": "image/png" },
    });
    const { data: avatar, response } = await lk.client.GET("/me/avatar", { parseAs: "blob" });
    assert.equal(response.headers.get("Content-Type"), "image/png");
    assert.ok(response.headers.get("ETag"));
    const bytes = new Uint8Array(await avatar!.arrayBuffer());
    assert.deepEqual([...bytes.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], "a PNG comes back");
    const unchanged = await lk.client.GET("/me/avatar", {
      parseAs: "blob",
      headers: { "If-None-Match": response.headers.get("ETag")! },
    });
    assert.equal(unchanged.response.status, 304);
    assert.equal(unchanged.data, undefined);
    const { data: me } = await lk.client.GET("/me");
    assert.equal(me?.has_avatar, true);
  });

  it("uploads an avatar as multipart", async () => {
    const form = new FormData();
    form.append("file", new Blob([PNG_1X1], { type: "image/png" }), "me.png");
    // The body's type is the spec's; FormData is sent as it is.
    await lk.client.POST("/me/avatar", { body: form as unknown as { file: Blob } });
    await lk.client.DELETE("/me/avatar");
    await rejectsWith(lk.client.GET("/me/avatar", { parseAs: "blob" }), "NOT_FOUND", 404);
  });

  it("lists both sessions, the current one marked", async () => {
    const { data: sessions } = await lk.client.GET("/me/sessions");
    assert.equal(sessions?.length, 2);
    const current = sessions!.filter((s) => s.current);
    assert.equal(current.length, 1);
    assert.equal(current[0]!.id, first.session_id);
    assert.equal(sessions![0]!.id, first.session_id, "newest first");
  });

  it("refreshes: a new pair for the same session", async () => {
    const calls = net.count("POST /api/auth/refresh");
    const pair = await lk.session.refresh();
    assert.equal(net.count("POST /api/auth/refresh"), calls + 1);
    // (The access token may be byte-identical: same claims within one second.)
    assert.notEqual(pair.refresh_token, first.refresh_token, "the refresh token rotates");
    assert.equal(pair.session_id, first.session_id);
    assert.deepEqual(await lk.session.tokens(), pair);
    const { data: me } = await lk.client.GET("/me");
    assert.equal(me?.id, userId);
  });

  it("a wrong secret is INVALID_CREDENTIALS, and does not trigger a refresh", async () => {
    const calls = net.count("POST /api/auth/refresh");
    await rejectsWith(lk.client.DELETE("/me", { body: { secret: "not-the-secret" } }), "INVALID_CREDENTIALS", 401);
    assert.equal(net.count("POST /api/auth/refresh"), calls);
    assert.ok(await lk.session.tokens(), "still signed in");
  });

  it("logs out: the tokens are forgotten and the session is dead on the server", async () => {
    const last = (await lk.session.tokens())!;
    await lk.session.logout();
    assert.equal(await lk.session.tokens(), null);
    await rejectsWith(lk.client.GET("/me"), "UNAUTHENTICATED", 401);
    // The server refuses the old access token too, not just this client.
    const bare = createApiClient({ baseUrl: server.baseUrl });
    await rejectsWith(bare.GET("/me", { headers: { Authorization: `Bearer ${last.access_token}` } }), "UNAUTHENTICATED", 401);
    const err = await rejectsWith(lk.session.refresh(), "UNAUTHENTICATED", 401);
    assert.equal(err.message, "not signed in");
  });
});

describe("errors", () => {
  it("an empty name is INVALID_REQUEST with field details", async () => {
    const { session } = createLatchkey({ baseUrl: server.baseUrl });
    const err = await rejectsWith(session.register({ name: "" }), "INVALID_REQUEST", 400);
    assert.ok(err instanceof Error);
    assert.equal(err.name, "LatchkeyError");
    assert.ok(err.details.some((d) => d.field === "name"), JSON.stringify(err.details));
    assert.equal(await session.tokens(), null);
  });

  it("a wrong secret signs nobody in", async () => {
    const { session } = createLatchkey({ baseUrl: server.baseUrl });
    await rejectsWith(session.signIn({ secret: "x".repeat(43) }), "INVALID_CREDENTIALS", 401);
    assert.equal(await session.tokens(), null);
  });

  it("a refused refresh ends the session", async () => {
    const a = createLatchkey({ baseUrl: server.baseUrl });
    const b = createLatchkey({ baseUrl: server.baseUrl });
    const { secret } = (await a.session.register({ name: "Grace" })) as { secret: string };
    await b.session.signIn({ secret });
    await b.session.logout("others"); // revokes a's session on the server
    assert.ok(await b.session.tokens(), "'others' keeps b signed in");
    await rejectsWith(a.client.GET("/me"), "UNAUTHENTICATED", 401);
    assert.equal(await a.session.tokens(), null);
    const { data: me } = await b.client.GET("/me");
    assert.equal(me?.name, "Grace");
  });
});

describe("password account", () => {
  const email = "Ada.Lovelace@Example.com";
  const password = "correct horse battery staple";

  it("registers, signs in by username, and logs out", async () => {
    const { client, session } = createLatchkey({ baseUrl: server.baseUrl });
    const reg = await session.register({ email, password, username: "ada_l" });
    assert.ok("user" in reg);
    assert.equal(reg.user.account_type, "password");
    assert.equal(reg.user.email, email.toLowerCase());
    assert.ok(!("secret" in reg) || reg.secret === undefined);
    await session.logout();

    const auth = await session.signIn({ username: "ADA_L", password });
    assert.equal(auth.two_factor_required, false);
    const { data: me } = await client.GET("/me");
    assert.equal(me?.username, "ada_l");
    await rejectsWith(client.GET("/me/secret"), "NOT_APPLICABLE", 409);
    await session.logout();
    assert.equal(await session.tokens(), null);
  });

  it("a common password is WEAK_PASSWORD naming the field", async () => {
    const { session } = createLatchkey({ baseUrl: server.baseUrl });
    const err = await rejectsWith(session.register({ email: "bob@example.com", password: "password1" }), "WEAK_PASSWORD", 400);
    assert.ok(err.details.some((d) => d.field === "password"), JSON.stringify(err.details));
  });

  it("a taken email is EMAIL_TAKEN", async () => {
    const { session } = createLatchkey({ baseUrl: server.baseUrl });
    await rejectsWith(session.register({ email, password: "another long passphrase" }), "EMAIL_TAKEN", 409);
  });
});
