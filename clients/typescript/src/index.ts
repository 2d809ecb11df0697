/**
 * The TypeScript client of Latchkey: a typed fetch layer generated from the
 * service's OpenAPI document, and a session that keeps the token pair,
 * sends the access token and refreshes it when it expires.
 *
 * @example
 * const { client, session } = createLatchkey({ baseUrl: "https://id.example.com/api" });
 * await session.signIn({ email: "ada@example.com", password: "correct horse battery staple" });
 * const { data: me } = await client.GET("/me");
 *
 * @module
 */
export { createApiClient, type ApiClient, type ApiClientOptions } from "./client.js";
export { LatchkeyError, throwOnError, type ErrorBody, type ErrorCode, type FieldError } from "./errors.js";
export {
  createLatchkey,
  memoryStorage,
  type AuthResult,
  type Latchkey,
  type LatchkeyOptions,
  type LatchkeySession,
  type LogoutScope,
  type PasswordRegistration,
  type PendingConfirmation,
  type Registered,
  type RegisteredSecret,
  type RegisterOutcome,
  type RegisterRequest,
  type SecretRegistration,
  type SignedIn,
  type SignInRequest,
  type SignInTwoFactorRequest,
  type TokenPair,
  type TokenStorage,
  type TwoFactorChallenge,
} from "./session.js";
export type { components, operations, paths } from "./schema.js";

import type { components } from "./schema.js";
/** An account, as `GET /me` returns it. */
export type User = components["schemas"]["User"];
/** A signed-in session, as `GET /me/sessions` lists it. */
export type Session = components["schemas"]["Session"];
/** An account as admins see it (`GET /admin/users/{id}`). */
export type AdminUser = components["schemas"]["AdminUser"];
/** A page of `GET /admin/users`; `next_cursor` is absent on the last page. */
export type AdminUserPage = components["schemas"]["AdminUserPage"];
/** The flags an admin may set with `PATCH /admin/users/{id}`. */
export type AdminUserUpdate = components["schemas"]["AdminUserUpdate"];
/** One entry of the security log (`GET /me/events`, `GET /admin/events`). */
export type Event = components["schemas"]["Event"];
/** What a security event records. */
export type EventType = components["schemas"]["EventType"];
/** A page of events; `next_cursor` is absent on the last page. */
export type EventPage = components["schemas"]["EventPage"];
