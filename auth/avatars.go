package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/latchkey-dev/latchkey/auth/avatar"
)

// DefaultAvatarDecodeBudget is the memory avatar decodes may use at once
// when Config.AvatarDecodeBudget is zero.
const DefaultAvatarDecodeBudget = 256 << 20

// decodeBudget admits avatar decodes against a memory budget: each takes
// its estimated cost (avatar.DecodeCost) while it runs. One cost larger
// than the whole budget is admitted alone, once nothing else runs: the
// header checks already bound every image (4096×4096 at 8 bytes a pixel),
// and refusing it for ever would only hide a budget set too small.
type decodeBudget struct {
	mu    sync.Mutex
	total int64
	used  int64
	freed chan struct{} // closed (and replaced) whenever room is given back
}

func newDecodeBudget(total int64) *decodeBudget {
	return &decodeBudget{total: total, freed: make(chan struct{})}
}

// acquire waits up to wait for room for cost and returns the function that
// gives it back; ErrOverloaded when there is none in time.
func (b *decodeBudget) acquire(ctx context.Context, cost int64, wait time.Duration) (release func(), err error) {
	cost = min(max(cost, 1), b.total)
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		b.mu.Lock()
		if b.used+cost <= b.total {
			b.used += cost
			b.mu.Unlock()
			var once sync.Once
			return func() { once.Do(func() { b.release(cost) }) }, nil
		}
		freed := b.freed
		b.mu.Unlock()
		select {
		case <-freed:
		case <-timer.C:
			return nil, fmt.Errorf("%w: avatar decode budget in use", ErrOverloaded)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (b *decodeBudget) release(cost int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= cost
	close(b.freed)
	b.freed = make(chan struct{})
}

// processImage runs avatar.Process once the decode budget has room for the
// image's estimated memory (read from its header): a flood of uploads
// queues, briefly, instead of exhausting memory.
func (s *Service) processImage(ctx context.Context, data []byte) ([]byte, string, error) {
	cost, err := avatar.DecodeCost(data)
	if err != nil {
		return nil, "", err
	}
	release, err := s.imageBudget.acquire(ctx, cost, s.cfg.AvatarDecodeWait)
	if err != nil {
		return nil, "", err
	}
	defer release()
	return avatar.Process(data)
}

// SetAvatar re-encodes an uploaded image (dropping its metadata) and makes
// it the user's avatar. Uploads are limited per account (every attempt
// counts, except one refused as ErrOverloaded). ErrUnsupportedImage when it
// is not a supported image, ErrInvalidImage when it cannot be decoded or is
// too large.
func (s *Service) SetAvatar(ctx context.Context, userID string, data []byte) error {
	res, err := s.guard.avatarUpload(ctx, userID)
	if err != nil {
		return err
	}
	out, contentType, err := s.processImage(ctx, data)
	switch {
	case errors.Is(err, avatar.ErrUnsupported):
		return fmt.Errorf("%w: %w", ErrUnsupportedImage, err)
	case errors.Is(err, avatar.ErrInvalid):
		return fmt.Errorf("%w: %w", ErrInvalidImage, err)
	case errors.Is(err, ErrOverloaded):
		res.refund(ctx) // not processed: try again without losing an upload
		return err
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
