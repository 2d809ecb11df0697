// A strict consumer of @latchkey/client, as an application would write it.
// test/consumer.test.ts compiles it with `tsc --strict --noEmit`-level
// checks (and more: noUncheckedIndexedAccess, exactOptionalPropertyTypes),
// fails when it does not use every export of the package, and runs it
// against the real binary. Written without `!` or `?.` on answers: a
// resolved call has its data.
import {
  createApiClient,
  createLatchkey,
  LatchkeyError,
  memoryStorage,
  throwOnError,
  type AdminUser,
  type AdminUserPage,
  type AdminUserUpdate,
  type ApiClient,
  type ApiClientOptions,
  type AuthResult,
  type components,
  type ErrorBody,
  type ErrorCode,
  type Event,
  type EventPage,
  type EventType,
  type FieldError,
  type Latchkey,
  type LatchkeyOptions,
  type LatchkeySession,
  type LogoutScope,
  type operations,
  type PasswordRegistration,
  type paths,
  type PendingConfirmation,
  type Registered,
  type RegisteredSecret,
  type RegisterOutcome,
  type RegisterRequest,
  type SecretRegistration,
  type Session,
  type SignedIn,
  type SignInRequest,
  type SignInTwoFactorRequest,
  type TokenPair,
  type TokenStorage,
  type TwoFactorChallenge,
  type User,
} from "@latchkey/client";
import createClient from "openapi-fetch";

/** What the run found, for the test to check. */
export interface Report {
  secretUser: User;
  sessions: Session[];
  passwordOutcome: RegisterOutcome["signedIn"];
  challengeOrTokens: "challenge" | "tokens";
  errorCode: ErrorCode;
  fields: FieldError[];
  rawErrorStatus: number;
}

function describe(r: AuthResult): "challenge" | "tokens" {
  if (r.two_factor_required) {
    const c: TwoFactorChallenge = r;
    return c.two_factor_token.length > 0 ? "challenge" : "tokens";
  }
  const s: SignedIn = r;
  const pair: TokenPair = s;
  return pair.access_token.length > 0 ? "tokens" : "challenge";
}

function greet(o: RegisterOutcome): string {
  if (o.signedIn) {
    const r: Registered = o;
    return `signed in as ${r.user.name}`;
  }
  const p: PendingConfirmation = o;
  return p.code === "PENDING_CONFIRMATION" ? "check your inbox" : p.message;
}

/** An operator's pass over a page of accounts (compiled only: the run has no admin). */
export function disableIdle(page: AdminUserPage): AdminUserUpdate[] {
  return page.users
    .filter((u: AdminUser) => !u.disabled && u.live_sessions === 0)
    .map((): AdminUserUpdate => ({ disabled: true }));
}

export async function run(baseUrl: string): Promise<Report> {
  const storage: TokenStorage = memoryStorage();
  const options: LatchkeyOptions = { baseUrl, storage };
  const lk: Latchkey = createLatchkey(options);
  const session: LatchkeySession = lk.session;
  const client: ApiClient = lk.client;

  // A secret account: always signed in, the secret typed as a string.
  const secretBody: SecretRegistration = { name: "Strict Ada" };
  const registered: RegisteredSecret = await session.register(secretBody);
  const secret: string = registered.secret;
  const signIn: SignInRequest = { secret };
  const result = await session.signIn(signIn);
  const { data: me } = await client.GET("/me");
  const { data: sessions } = await client.GET("/me/sessions");
  const first: Session | undefined = sessions[0];
  if (!first) throw new Error("no session listed");
  // The caller's own security log, newest first.
  const { data: events } = await client.GET("/me/events");
  const log: EventPage = events;
  const newest: Event | undefined = log.events[0];
  if (!newest) throw new Error("no event logged");
  const kind: EventType = newest.type;
  if (kind !== "sign_in") throw new Error(`newest event ${kind}, want sign_in`);

  // A password account: narrowed on signedIn.
  const passwordBody: PasswordRegistration = {
    email: `strict-${Date.now()}@example.com`,
    password: "a perfectly strict passphrase",
  };
  const generic: RegisterRequest = passwordBody;
  const other = createLatchkey({ baseUrl });
  const outcome = await other.session.register(generic);
  greet(outcome);

  // Errors: a LatchkeyError with a typed code and field details.
  let errorCode: ErrorCode = "INTERNAL";
  let fields: FieldError[] = [];
  try {
    await other.session.signIn({ email: "not-an-email", password: "x" });
  } catch (err) {
    if (!(err instanceof LatchkeyError)) throw err;
    const body: ErrorBody = { code: err.code, message: err.message, details: err.details };
    errorCode = body.code;
    fields = err.details;
  }

  // A two-factor answer is typed as signed in.
  const answer: SignInTwoFactorRequest = { two_factor_token: "none", code: "000000" };
  const maybe: Promise<SignedIn> = other.session.signInTwoFactor(answer);
  await maybe.catch(() => undefined);

  // Without a session: credentials by hand.
  const apiOptions: ApiClientOptions = { baseUrl, headers: { Authorization: `Bearer ${(await session.tokens())?.access_token ?? ""}` } };
  const bare = createApiClient(apiOptions);
  const { data: again } = await bare.GET("/me");
  if (again.id !== me.id) throw new Error("another user");

  // throwOnError on a plain openapi-fetch client.
  const raw = createClient<paths>({ baseUrl });
  raw.use(throwOnError);
  let rawErrorStatus = 0;
  await raw.GET("/me").catch((err: unknown) => {
    if (err instanceof LatchkeyError) rawErrorStatus = err.status;
  });

  type MeOperation = operations["getMe"];
  const userSchema: components["schemas"]["User"] = me;
  const scope: LogoutScope = "current";
  const status: keyof MeOperation["responses"] = 200;
  await session.logout(scope);
  return {
    secretUser: userSchema,
    sessions,
    passwordOutcome: outcome.signedIn,
    challengeOrTokens: describe(result),
    errorCode,
    fields,
    rawErrorStatus: rawErrorStatus || status,
  };
}
