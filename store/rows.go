package store

import (
	"github.com/latchkey-dev/latchkey/auth"
)

// Row types mirror the tables of the migrations. Every column is named
// explicitly; GORM's automatic time tracking is off (the domain supplies
// every time).

type userRow struct {
	ID               string    `gorm:"column:id;primaryKey"`
	AccountType      string    `gorm:"column:account_type"`
	Name             string    `gorm:"column:name"`
	Username         *string   `gorm:"column:username"`
	Email            *string   `gorm:"column:email"`
	EmailConfirmed   bool      `gorm:"column:email_confirmed"`
	Bio              *string   `gorm:"column:bio"`
	Locale           string    `gorm:"column:locale"`
	Timezone         string    `gorm:"column:timezone"`
	Location         *string   `gorm:"column:location"`
	BirthDate        *string   `gorm:"column:birth_date"`
	HasAvatar        bool      `gorm:"column:has_avatar"`
	TwoFactorEnabled bool      `gorm:"column:two_factor_enabled"`
	Admin            bool      `gorm:"column:admin"`
	Disabled         bool      `gorm:"column:disabled"`
	SecretHash       nullBytes `gorm:"column:secret_hash"`
	SecretEnc        nullBytes `gorm:"column:secret_enc"`
	PasswordHash     *string   `gorm:"column:password_hash"`
	PasswordVersion  int64     `gorm:"column:password_version"`
	CreatedAt        timestamp `gorm:"column:created_at;autoCreateTime:false"`
	UpdatedAt        timestamp `gorm:"column:updated_at;autoUpdateTime:false"`
	// Two-factor (store/twofactor.go).
	TOTPKeyEnc     nullBytes `gorm:"column:totp_key_enc"`
	TOTPPendingEnc nullBytes `gorm:"column:totp_pending_enc"`
	TOTPLastStep   int64     `gorm:"column:totp_last_step"`
}

func (userRow) TableName() string { return "users" }

type sessionRow struct {
	ID        string     `gorm:"column:id;primaryKey"`
	UserID    string     `gorm:"column:user_id"`
	CreatedAt timestamp  `gorm:"column:created_at;autoCreateTime:false"`
	LastUsed  timestamp  `gorm:"column:last_used"`
	ExpiresAt timestamp  `gorm:"column:expires_at"`
	RevokedAt *timestamp `gorm:"column:revoked_at"`
	UserAgent string     `gorm:"column:user_agent"`
	IP        string     `gorm:"column:ip"`
}

func (sessionRow) TableName() string { return "sessions" }

type refreshTokenRow struct {
	Hash         []byte     `gorm:"column:hash;primaryKey"`
	SessionID    string     `gorm:"column:session_id"`
	CreatedAt    timestamp  `gorm:"column:created_at;autoCreateTime:false"`
	ExpiresAt    timestamp  `gorm:"column:expires_at"`
	RotatedAt    *timestamp `gorm:"column:rotated_at"`
	SuccessorEnc nullBytes  `gorm:"column:successor_enc"`
}

func (refreshTokenRow) TableName() string { return "refresh_tokens" }

type signingKeyRow struct {
	ID         string     `gorm:"column:id;primaryKey"`
	PrivateEnc []byte     `gorm:"column:private_enc"`
	PublicKey  []byte     `gorm:"column:public_key"`
	CreatedAt  timestamp  `gorm:"column:created_at;autoCreateTime:false"`
	RetiredAt  *timestamp `gorm:"column:retired_at"`
}

func (signingKeyRow) TableName() string { return "signing_keys" }

type avatarRow struct {
	UserID      string    `gorm:"column:user_id;primaryKey"`
	ContentType string    `gorm:"column:content_type"`
	Data        []byte    `gorm:"column:data"`
	ETag        string    `gorm:"column:etag"`
	UpdatedAt   timestamp `gorm:"column:updated_at;autoUpdateTime:false"`
}

func (avatarRow) TableName() string { return "avatars" }

func toUserRow(u *auth.User) userRow {
	return userRow{
		ID:               u.ID,
		AccountType:      string(u.AccountType),
		Name:             u.Name,
		Username:         u.Username,
		Email:            u.Email,
		EmailConfirmed:   u.EmailConfirmed,
		Bio:              u.Bio,
		Locale:           u.Locale,
		Timezone:         u.Timezone,
		Location:         u.Location,
		BirthDate:        u.BirthDate,
		HasAvatar:        u.HasAvatar,
		TwoFactorEnabled: u.TwoFactorEnabled,
		Admin:            u.Admin,
		Disabled:         u.Disabled,
		SecretHash:       nullBytes(u.SecretHash),
		SecretEnc:        nullBytes(u.SecretEnc),
		PasswordHash:     nullString(u.PasswordHash),
		PasswordVersion:  u.PasswordVersion,
		CreatedAt:        ts(u.CreatedAt),
		UpdatedAt:        ts(u.UpdatedAt),
		TOTPKeyEnc:       nullBytes(u.TOTPKeyEnc),
		TOTPPendingEnc:   nullBytes(u.TOTPPendingEnc),
		TOTPLastStep:     u.TOTPLastStep,
	}
}

func (r *userRow) toAuth() *auth.User {
	return &auth.User{
		ID:               r.ID,
		AccountType:      auth.AccountType(r.AccountType),
		Name:             r.Name,
		Username:         r.Username,
		Email:            r.Email,
		EmailConfirmed:   r.EmailConfirmed,
		Bio:              r.Bio,
		Locale:           r.Locale,
		Timezone:         r.Timezone,
		Location:         r.Location,
		BirthDate:        r.BirthDate,
		HasAvatar:        r.HasAvatar,
		TwoFactorEnabled: r.TwoFactorEnabled,
		Admin:            r.Admin,
		Disabled:         r.Disabled,
		CreatedAt:        r.CreatedAt.Time(),
		UpdatedAt:        r.UpdatedAt.Time(),
		SecretHash:       []byte(r.SecretHash),
		SecretEnc:        []byte(r.SecretEnc),
		PasswordHash:     deref(r.PasswordHash),
		PasswordVersion:  r.PasswordVersion,
		TOTPKeyEnc:       []byte(r.TOTPKeyEnc),
		TOTPPendingEnc:   []byte(r.TOTPPendingEnc),
		TOTPLastStep:     r.TOTPLastStep,
	}
}

func toSessionRow(s *auth.Session) sessionRow {
	return sessionRow{
		ID:        s.ID,
		UserID:    s.UserID,
		CreatedAt: ts(s.CreatedAt),
		LastUsed:  ts(s.LastUsed),
		ExpiresAt: ts(s.ExpiresAt),
		RevokedAt: tsPtr(s.RevokedAt),
		UserAgent: s.UserAgent,
		IP:        s.IP,
	}
}

func (r *sessionRow) toAuth() auth.Session {
	return auth.Session{
		ID:        r.ID,
		UserID:    r.UserID,
		CreatedAt: r.CreatedAt.Time(),
		LastUsed:  r.LastUsed.Time(),
		ExpiresAt: r.ExpiresAt.Time(),
		RevokedAt: timePtr(r.RevokedAt),
		UserAgent: r.UserAgent,
		IP:        r.IP,
	}
}

func toRefreshTokenRow(t *auth.RefreshToken) refreshTokenRow {
	return refreshTokenRow{
		Hash:         t.Hash,
		SessionID:    t.SessionID,
		CreatedAt:    ts(t.CreatedAt),
		ExpiresAt:    ts(t.ExpiresAt),
		RotatedAt:    tsPtr(t.RotatedAt),
		SuccessorEnc: nullBytes(t.SuccessorEnc),
	}
}

func (r *refreshTokenRow) toAuth() *auth.RefreshToken {
	return &auth.RefreshToken{
		Hash:         r.Hash,
		SessionID:    r.SessionID,
		CreatedAt:    r.CreatedAt.Time(),
		ExpiresAt:    r.ExpiresAt.Time(),
		RotatedAt:    timePtr(r.RotatedAt),
		SuccessorEnc: []byte(r.SuccessorEnc),
	}
}

func toSigningKeyRow(k *auth.SigningKey) signingKeyRow {
	return signingKeyRow{
		ID:         k.ID,
		PrivateEnc: k.PrivateEnc,
		PublicKey:  k.Public,
		CreatedAt:  ts(k.CreatedAt),
		RetiredAt:  tsPtr(k.RetiredAt),
	}
}

func (r *signingKeyRow) toAuth() auth.SigningKey {
	return auth.SigningKey{
		ID:         r.ID,
		PrivateEnc: r.PrivateEnc,
		Public:     r.PublicKey,
		CreatedAt:  r.CreatedAt.Time(),
		RetiredAt:  timePtr(r.RetiredAt),
	}
}

func toAvatarRow(a *auth.Avatar) avatarRow {
	return avatarRow{
		UserID:      a.UserID,
		ContentType: a.ContentType,
		Data:        a.Data,
		ETag:        a.ETag,
		UpdatedAt:   ts(a.UpdatedAt),
	}
}

func (r *avatarRow) toAuth() *auth.Avatar {
	return &auth.Avatar{
		UserID:      r.UserID,
		ContentType: r.ContentType,
		Data:        r.Data,
		ETag:        r.ETag,
		UpdatedAt:   r.UpdatedAt.Time(),
	}
}

// nullString maps "" to NULL.
func nullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
