package auth

// MailStore is the persistence of mailed tokens and the outbox.
type MailStore interface{}
