package store

import (
	"context"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/latchkey-dev/latchkey/auth"
)

// PutAvatar creates or replaces the user's avatar and sets HasAvatar, in
// one transaction. ErrNotFound when the user does not exist.
func (db *DB) PutAvatar(ctx context.Context, a *auth.Avatar) error {
	userID, err := parseID(a.UserID)
	if err != nil {
		return err
	}
	err = db.gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := setHasAvatar(tx, userID, true); err != nil {
			return err
		}
		row := toAvatarRow(a)
		row.UserID = userID
		return tx.Clauses(clause.OnConflict{
			Columns:   []clause.Column{{Name: "user_id"}},
			DoUpdates: clause.AssignmentColumns([]string{"content_type", "data", "etag", "updated_at"}),
		}).Create(&row).Error
	})
	return translate("put avatar", err)
}

// AvatarByUserID returns the user's avatar; ErrNotFound when none.
func (db *DB) AvatarByUserID(ctx context.Context, userID string) (*auth.Avatar, error) {
	userID, err := parseID(userID)
	if err != nil {
		return nil, err
	}
	var row avatarRow
	if err := db.gorm.WithContext(ctx).Where("user_id = ?", userID).Take(&row).Error; err != nil {
		return nil, translate("avatar", err)
	}
	return row.toAuth(), nil
}

// DeleteAvatar removes the user's avatar, if any, and clears HasAvatar, in
// one transaction. ErrNotFound when the user does not exist.
func (db *DB) DeleteAvatar(ctx context.Context, userID string) error {
	userID, err := parseID(userID)
	if err != nil {
		return err
	}
	err = db.gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := setHasAvatar(tx, userID, false); err != nil {
			return err
		}
		return tx.Where("user_id = ?", userID).Delete(&avatarRow{}).Error
	})
	return translate("delete avatar", err)
}

func setHasAvatar(tx *gorm.DB, userID string, has bool) error {
	res := tx.Model(&userRow{}).Where("id = ?", userID).Update("has_avatar", has)
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected == 0 {
		return auth.ErrNotFound
	}
	return nil
}
