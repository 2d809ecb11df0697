import type { Middleware } from "openapi-fetch";
import { createApiClient, type ApiClient, type ApiClientOptions } from "./client.js";
import { LatchkeyError } from "./errors.js";
import type { components } from "./schema.js";

type Schemas = components["schemas"];
/** An access and refresh token pair, as `POST /auth/refresh` returns it. */
export type TokenPair = Schemas["TokenPair"];
/** A sign-in that is complete: the token pair. */
export type SignedIn = TokenPair & { two_factor_required: false };
/** A sign-in that waits for a second factor: answer it with `signInTwoFactor`. */
export interface TwoFactorChallenge {
  two_factor_required: true;
  /** The challenge, for {@link LatchkeySession.signInTwoFactor}. */
  two_factor_token: string;
  /** Seconds until the challenge expires. */
  expires_in: number;
}
/**
 * The outcome of a first factor, discriminated on `two_factor_required`:
 * `if (r.two_factor_required) r.two_factor_token; else r.access_token`.
 */
export type AuthResult = SignedIn | TwoFactorChallenge;
/** The body of `POST /register`: a secret account or a password account. */
export type RegisterRequest = Schemas["RegisterRequest"];
/** The body of `POST /register` for a secret account: `{ name }`. */
export type SecretRegistration = Schemas["SecretRegistration"];
/** The body of `POST /register` for a password account: `{ email, password, … }`. */
export type PasswordRegistration = Schemas["PasswordRegistration"];
/** A registration that signed in (201): the user and the tokens (stored). */
export type Registered = Schemas["RegisterResult"] & { signedIn: true };
/** A secret account's registration: always signed in, with its secret. */
export type RegisteredSecret = Registered & { secret: string };
/**
 * A registration waiting for its email confirmation (202): no tokens; the
 * mailed link signs in (`POST /auth/confirm`).
 */
export type PendingConfirmation = Schemas["Accepted"] & { signedIn: false };
/** The outcome of `register`, discriminated on `signedIn`. */
export type RegisterOutcome = Registered | PendingConfirmation;
/** The body of `POST /auth`: exactly one credential. */
export type SignInRequest = Schemas["SignInRequest"];
/** The body of `POST /auth/two-factor`. */
export type SignInTwoFactorRequest = Schemas["SignInTwoFactorRequest"];
/** Which sessions `logout` ends. */
export type LogoutScope = Schemas["LogoutScope"];

/**
 * Where the session keeps its token pair. The default keeps it in memory;
 * implement this to keep it elsewhere (localStorage, a keychain, a cookie
 * jar). Either method may be async.
 */
export interface TokenStorage {
  get(): TokenPair | null | Promise<TokenPair | null>;
  /** Stores a new pair, or forgets it (`null`). */
  set(tokens: TokenPair | null): void | Promise<void>;
}

/** A {@link TokenStorage} in memory: the tokens die with the page or process. */
export function memoryStorage(): TokenStorage {
  let tokens: TokenPair | null = null;
  return {
    get: () => tokens,
    set: (t) => {
      tokens = t;
    },
  };
}

/** The signed-in state of a {@link Latchkey} client. */
export interface LatchkeySession {
  /**
   * Creates an account; with tokens in the answer (201), signs in. A
   * secret account is always signed in and gets its `secret`; a password
   * account may wait for its email confirmation: narrow on `signedIn`.
   */
  register(body: SecretRegistration): Promise<RegisteredSecret>;
  register(body: RegisterRequest): Promise<RegisterOutcome>;
  /**
   * Signs in. With a two-factor challenge in the answer, no tokens are
   * stored: answer it with {@link LatchkeySession.signInTwoFactor}.
   */
  signIn(body: SignInRequest): Promise<AuthResult>;
  /** Answers a two-factor challenge and signs in. */
  signInTwoFactor(body: SignInTwoFactorRequest): Promise<SignedIn>;
  /**
   * Trades the refresh token for a new pair. Concurrent callers share one
   * request. A refresh the server refuses (4xx) ends the session.
   */
  refresh(): Promise<TokenPair>;
  /**
   * Ends sessions on the server (`current` by default) and, unless the scope
   * is `others`, forgets the tokens here.
   */
  logout(scope?: LogoutScope): Promise<void>;
  /** The stored token pair, or `null` when signed out. */
  tokens(): Promise<TokenPair | null>;
  /**
   * The openapi-fetch middleware that sends the access token and, when an
   * answer is `401 UNAUTHENTICATED`, refreshes once and retries. Installed on
   * {@link Latchkey.client}; `client.use(session.middleware)` adds it to
   * another client.
   */
  readonly middleware: Middleware;
}

/** What {@link createLatchkey} returns. */
export interface Latchkey {
  /** The typed API client; its calls carry the session's access token. */
  client: ApiClient;
  /** The session: sign in, out, and the token pair. */
  session: LatchkeySession;
}

/** Options of {@link createLatchkey}. */
export interface LatchkeyOptions extends ApiClientOptions {
  /** Where to keep the token pair; in memory by default. */
  storage?: TokenStorage;
}

/**
 * Creates a typed Latchkey client with a session: sign in through
 * `session`, then call the API through `client`. Expired access tokens are
 * refreshed on the fly, once for all the calls that found them expired.
 */
export function createLatchkey(options: LatchkeyOptions = {}): Latchkey {
  const storage = options.storage ?? memoryStorage();
  // The sign-in operations and the refresh go out without the session
  // middleware: they carry no bearer and must never trigger a refresh.
  const anonymous = createApiClient(options);
  const client = createApiClient(options);

  let refreshing: Promise<TokenPair> | undefined;
  function refresh(): Promise<TokenPair> {
    refreshing ??= (async () => {
      const current = await storage.get();
      if (!current) {
        throw new LatchkeyError(401, { code: "UNAUTHENTICATED", message: "not signed in" });
      }
      try {
        const { data } = await anonymous.POST("/auth/refresh", { body: { refresh_token: current.refresh_token } });
        await storage.set(data);
        return data;
      } catch (err) {
        // The server refused this refresh token: it will never work again.
        // Anything else (network, 429, 5xx) may pass, so keep the session.
        if (err instanceof LatchkeyError && err.status < 500 && err.status !== 429) {
          await storage.set(null);
        }
        throw err;
      }
    })().finally(() => {
      refreshing = undefined;
    });
    return refreshing;
  }

  // renew answers the tokens to retry with after `stale` was refused, or
  // null when the session is over. When another call has refreshed already,
  // its tokens are reused rather than refreshing again.
  async function renew(stale: string): Promise<TokenPair | null> {
    const current = await storage.get();
    if (!current) return null;
    if (current.access_token !== stale) return current;
    try {
      return await refresh();
    } catch (err) {
      if (err instanceof LatchkeyError && (await storage.get()) === null) return null;
      throw err;
    }
  }

  // What each request that carries the session's token was sent with: the
  // token, and an unread copy to retry with.
  const sent = new WeakMap<Request, { token: string; copy: Request }>();
  const middleware: Middleware = {
    async onRequest({ request }) {
      if (request.headers.has("Authorization")) return undefined; // the caller's own credentials
      const tokens = await storage.get();
      if (!tokens) return undefined;
      request.headers.set("Authorization", `Bearer ${tokens.access_token}`);
      sent.set(request, { token: tokens.access_token, copy: request.clone() });
      return request;
    },
    async onResponse({ request, response, options }) {
      const s = sent.get(request);
      sent.delete(request);
      if (!s || response.status !== 401 || !(await isUnauthenticated(response))) return undefined;
      const tokens = await renew(s.token);
      if (!tokens) return undefined; // the 401 stands
      s.copy.headers.set("Authorization", `Bearer ${tokens.access_token}`);
      return options.fetch(s.copy);
    },
    onError({ request }) {
      sent.delete(request);
      return undefined;
    },
  };
  client.use(middleware);

  async function signedIn(answer: Schemas["AuthResult"]): Promise<AuthResult> {
    const result = authResult(answer);
    if (!result.two_factor_required) await storage.set(tokenPair(result));
    return result;
  }

  async function register(body: RegisterRequest): Promise<RegisterOutcome> {
    const { data } = await anonymous.POST("/register", { body });
    if ("tokens" in data) {
      await storage.set(data.tokens);
      return { ...data, signedIn: true };
    }
    return { ...data, signedIn: false };
  }

  const session: LatchkeySession = {
    register: register as LatchkeySession["register"],
    async signIn(body) {
      const { data } = await anonymous.POST("/auth", { body });
      return signedIn(data);
    },
    async signInTwoFactor(body) {
      const { data } = await anonymous.POST("/auth/two-factor", { body });
      const result = await signedIn(data);
      if (result.two_factor_required) throw new TypeError("a two-factor answer without tokens");
      return result;
    },
    refresh,
    async logout(scope = "current") {
      if (!(await storage.get())) return;
      try {
        await client.POST("/auth/logout", { body: { scope } });
      } catch (err) {
        // UNAUTHENTICATED: this session had ended already.
        if (!(err instanceof LatchkeyError && err.code === "UNAUTHENTICATED")) throw err;
      }
      if (scope !== "others") await storage.set(null);
    },
    tokens: async () => storage.get(),
    middleware,
  };
  return { client, session };
}

async function isUnauthenticated(response: Response): Promise<boolean> {
  try {
    const body: unknown = await response.clone().json();
    return typeof body === "object" && body !== null && (body as { code?: unknown }).code === "UNAUTHENTICATED";
  } catch {
    return false;
  }
}

// authResult narrows the spec's flat AuthResult (every field optional but
// the flag) to the union the server guarantees.
function authResult(r: Schemas["AuthResult"]): AuthResult {
  if (r.two_factor_required) {
    if (!r.two_factor_token || !r.expires_in) throw new TypeError("two-factor challenge without its token");
    return { two_factor_required: true, two_factor_token: r.two_factor_token, expires_in: r.expires_in };
  }
  const { access_token, token_type, expires_in, refresh_token, refresh_expires_in, session_id } = r;
  if (!access_token || !token_type || !expires_in || !refresh_token || !refresh_expires_in || !session_id) {
    throw new TypeError("sign-in answer without a complete token pair");
  }
  return { two_factor_required: false, access_token, token_type, expires_in, refresh_token, refresh_expires_in, session_id };
}

function tokenPair(r: SignedIn): TokenPair {
  const { access_token, token_type, expires_in, refresh_token, refresh_expires_in, session_id } = r;
  return { access_token, token_type, expires_in, refresh_token, refresh_expires_in, session_id };
}
