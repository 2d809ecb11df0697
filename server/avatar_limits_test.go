package server_test

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/latchkey-dev/latchkey/auth"
	"github.com/latchkey-dev/latchkey/auth/avatar"
	"github.com/latchkey-dev/latchkey/ratelimit"
)

// png16 is a w×h 16-bit RGB PNG of one opaque colour, written row by row
// (never holding the pixels), so a 4096×4096 one is about 130 KB while
// decoding it builds a 128 MiB RGBA64 image.
func png16(tb testing.TB, w, h int) []byte {
	tb.Helper()
	var idat bytes.Buffer
	zw, err := zlib.NewWriterLevel(&idat, zlib.BestCompression)
	if err != nil {
		tb.Fatal(err)
	}
	row := make([]byte, 1+6*w) // filter type 0, then 3 × 16 bits a pixel
	for i := 1; i < len(row); i++ {
		row[i] = byte(0x40 + i%6*0x20)
	}
	for range h {
		if _, err := zw.Write(row); err != nil {
			tb.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	ihdr := binary.BigEndian.AppendUint32(nil, uint32(w))
	ihdr = binary.BigEndian.AppendUint32(ihdr, uint32(h))
	ihdr = append(ihdr, 16, 2, 0, 0, 0) // 16-bit truecolour, no interlace
	out := []byte("\x89PNG\r\n\x1a\n")
	out = append(out, pngChunk("IHDR", ihdr)...)
	out = append(out, pngChunk("IDAT", idat.Bytes())...)
	return append(out, pngChunk("IEND", nil)...)
}

func (h *harness) uploadAvatar(access string, data []byte) response {
	h.t.Helper()
	return h.do("POST", "/api/me/avatar", data, bearer(access), hdr("Content-Type", "image/png"))
}

// TestAvatarDecodeBudget: decodes are admitted against a memory budget
// computed from each image's header, not a count. With room for one
// 16-bit 1024×1024 PNG (8 MiB decoded) and no wait, parallel uploads beyond
// it get 503 OVERLOADED with Retry-After; main admitted one per CPU
// whatever their size and let them all wait 2 s, so none was refused. A
// round whose uploads happen not to overlap shows nothing: up to 10 rounds
// run until one does (four uploads released together, each decoding for
// tens of milliseconds, overlap almost always).
func TestAvatarDecodeBudget(t *testing.T) {
	eachDB(t, func(h *harness) {
		img := png16(h.t, 1024, 1024)
		cost, err := avatar.DecodeCost(img)
		if err != nil {
			h.t.Fatal(err)
		}
		if cost < 1024*1024*8 {
			h.t.Fatalf("cost %d of a 16-bit 1024×1024 PNG, want at least 8 MiB", cost)
		}
		h = h.variant(func(c *auth.Config) {
			c.AvatarDecodeBudget = cost + cost/2 // one at a time
			c.AvatarDecodeWait = time.Millisecond
		})
		var accounts []account
		for i := range 4 {
			accounts = append(accounts, h.register(fmt.Sprintf("Uploader %d", i)))
		}
		h.run("POST /me/avatar/503 over the decode budget", func(h *harness) {
			for range 10 {
				rs := parallel(len(accounts), func(i int) response { return h.uploadAvatar(accounts[i].AccessToken, img) })
				var ok, overloaded int
				for _, r := range rs {
					switch r.Code {
					case http.StatusNoContent:
						ok++
					case http.StatusServiceUnavailable:
						h.want(r, http.StatusServiceUnavailable, "OVERLOADED")
						if s, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || s < 1 {
							h.t.Errorf("503 with Retry-After %q, want whole seconds", r.Header.Get("Retry-After"))
						}
						overloaded++
					default:
						h.t.Fatalf("answer %s, want 204 or 503", r)
					}
				}
				if ok == 0 {
					h.t.Fatal("no upload was admitted")
				}
				if overloaded > 0 {
					return
				}
			}
			h.t.Fatal("4 parallel uploads of 8 MiB each in a budget of 12 MiB were all admitted, 10 rounds running")
		})
		h.run("POST /me/avatar/204 small images share the budget", func(h *harness) {
			// Many small decodes fit at once: a budget, not a count.
			rs := parallel(len(accounts), func(i int) response { return h.uploadAvatar(accounts[i].AccessToken, pngBytes(h.t)) })
			for _, r := range rs {
				h.want(r, http.StatusNoContent, "")
			}
		})
		h.run("POST /me/avatar/204 an image over the whole budget is decoded alone", func(h *harness) {
			small := h.variant(func(c *auth.Config) { c.AvatarDecodeBudget = 1 << 20 })
			small.want(small.uploadAvatar(accounts[0].AccessToken, img), http.StatusNoContent, "")
		})
	})
}

// TestAvatarUploadLimit: an account may upload 10 avatars in 10 minutes
// (failed uploads count); the 11th is 429 RATE_LIMITED with Retry-After.
// main had no such limit.
func TestAvatarUploadLimit(t *testing.T) {
	eachDB(t, func(h *harness) {
		h = h.variant(func(c *auth.Config) {
			c.Limits = auth.Limits{AvatarUpload: ratelimit.Memory().New("avatar-upload", 10, 10*time.Minute)}
		})
		a, b := h.register("Ada"), h.register("Bob")
		h.want(h.uploadAvatar(a.AccessToken, []byte("\x89PNG\r\n\x1a\nnot really")), http.StatusBadRequest, "INVALID_REQUEST")
		for range 9 {
			h.want(h.uploadAvatar(a.AccessToken, pngBytes(h.t)), http.StatusNoContent, "")
		}
		h.wantRateLimited(h.uploadAvatar(a.AccessToken, pngBytes(h.t)), 10*time.Minute)
		h.want(h.uploadAvatar(b.AccessToken, pngBytes(h.t)), http.StatusNoContent, "")
		// Deleting and reading are not limited.
		h.want(h.do("DELETE", "/api/me/avatar", nil, bearer(a.AccessToken)), http.StatusNoContent, "")
		h.want(h.do("GET", "/api/me/avatar", nil, bearer(b.AccessToken)), http.StatusOK, "")
	})
}
