package store

import (
	"context"

	"gorm.io/gorm"

	"github.com/latchkey-dev/latchkey/auth"
)

// bulkBatch is the number of users per INSERT: about 22 columns each keeps
// a statement far below PostgreSQL's 65535 and SQLite's 32766 parameters.
const bulkBatch = 500

// CreateUsers inserts many users (without sessions) in one transaction, a
// few hundred rows per statement: for imports and for seeding the load
// benchmark (bench/). As for CreateUser, emails must already be in
// auth.NormalizeEmail's form. Uniqueness violations are translated as for
// CreateUser; then nothing is inserted.
func (db *DB) CreateUsers(ctx context.Context, users []auth.User) error {
	if len(users) == 0 {
		return nil
	}
	rows := make([]userRow, len(users))
	for i := range users {
		rows[i] = toUserRow(&users[i])
	}
	err := db.gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		return tx.CreateInBatches(rows, bulkBatch).Error
	})
	return translate("create users", err)
}
