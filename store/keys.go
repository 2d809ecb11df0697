package store

import (
	"context"

	"github.com/latchkey-dev/latchkey/auth"
)

// SigningKeys returns every stored signing key, newest first.
func (db *DB) SigningKeys(ctx context.Context) ([]auth.SigningKey, error) {
	var rows []signingKeyRow
	if err := db.gorm.WithContext(ctx).Order("created_at DESC, id DESC").Find(&rows).Error; err != nil {
		return nil, translate("signing keys", err)
	}
	out := make([]auth.SigningKey, len(rows))
	for i := range rows {
		out[i] = rows[i].toAuth()
	}
	return out, nil
}

// CreateSigningKey stores a new signing key; ErrConflict when its id is
// taken.
func (db *DB) CreateSigningKey(ctx context.Context, k *auth.SigningKey) error {
	row := toSigningKeyRow(k)
	return translate("create signing key", db.gorm.WithContext(ctx).Create(&row).Error)
}
