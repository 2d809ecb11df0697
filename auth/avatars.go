package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/latchkey-dev/latchkey/auth/avatar"
)

// imageWait is how long an upload waits for a free image slot before it
// is answered ErrOverloaded.
const imageWait = 2 * time.Second

// processImage runs avatar.Process in one of a bounded number of slots:
// decoding a 4096×4096 image takes around 100 MiB, so a flood of uploads
// must queue, not exhaust memory.
func (s *Service) processImage(ctx context.Context, data []byte) ([]byte, string, error) {
	timer := time.NewTimer(s.imageWait)
	defer timer.Stop()
	select {
	case s.imageSlots <- struct{}{}:
		defer func() { <-s.imageSlots }()
	case <-timer.C:
		return nil, "", ErrOverloaded
	case <-ctx.Done():
		return nil, "", ctx.Err()
	}
	return avatar.Process(data)
}

// SetAvatar re-encodes an uploaded image (dropping its metadata) and makes
// it the user's avatar. ErrUnsupportedMedia when it is not a supported
// image, ErrInvalidImage when it cannot be decoded or is too large.
func (s *Service) SetAvatar(ctx context.Context, userID string, data []byte) error {
	out, contentType, err := s.processImage(ctx, data)
	switch {
	case errors.Is(err, avatar.ErrUnsupported):
		return fmt.Errorf("%w: %w", ErrUnsupportedMedia, err)
	case errors.Is(err, avatar.ErrInvalid):
		return fmt.Errorf("%w: %w", ErrInvalidImage, err)
	case err != nil:
		return fmt.Errorf("process avatar: %w", err)
	}
	sum := sha256.Sum256(out)
	return s.st.PutAvatar(ctx, &Avatar{
		UserID:      userID,
		ContentType: contentType,
		Data:        out,
		ETag:        `"` + hex.EncodeToString(sum[:])[:32] + `"`,
		UpdatedAt:   s.now(),
	})
}

// Avatar returns the user's avatar; ErrNotFound when there is none.
func (s *Service) Avatar(ctx context.Context, userID string) (*Avatar, error) {
	return s.st.AvatarByUserID(ctx, userID)
}

// DeleteAvatar removes the user's avatar; having none is not an error.
func (s *Service) DeleteAvatar(ctx context.Context, userID string) error {
	if err := s.st.DeleteAvatar(ctx, userID); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	return nil
}
