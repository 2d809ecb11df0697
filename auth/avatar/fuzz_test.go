package avatar

import (
	"bytes"
	"encoding/binary"
	"errors"
	"image"
	"image/gif"
	"os"
	"testing"
)

// FuzzProcess checks that no input makes Process panic, return an error
// other than its two sentinels, or produce output that is not a valid image
// within the limits.
func FuzzProcess(f *testing.F) {
	validPNG := encodePNG(f, solid(4, 3, teal))
	validJPEG := encodeJPEG(f, halves(8, 8))
	validGIF := encodeGIF(f, &gif.GIF{
		Image: []*image.Paletted{paletted(image.Rect(0, 0, 4, 4), red), paletted(image.Rect(1, 1, 3, 3), blue)},
		Delay: []int{0, 0},
	})
	seeds := [][]byte{
		nil,
		[]byte("<html><script>alert(1)</script>"),
		validPNG,
		validPNG[:len(validPNG)/2],
		withPNGText(validPNG, marker),
		pngHeaderOnly(100000, 100000),
		validJPEG,
		withJPEGSegment(validJPEG, 0xe1, exifPayload(binary.BigEndian, 6, marker)),
		withJPEGSegment(validJPEG, 0xe1, exifPayload(binary.LittleEndian, 7, "")),
		validJPEG[:len(validJPEG)/2],
		validGIF,
		append(append([]byte{}, validGIF...), "<html>"...),
		webpSolid(3, 2, teal),
		webpExtended(3, 2, 3, 2, teal),
		webpExtended(1, 1, 16384, 16384, teal),
	}
	if lossy, err := os.ReadFile("testdata/blue-purple-pink.lossy.webp"); err == nil {
		seeds = append(seeds, lossy)
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		out, contentType, err := Process(data)
		if err != nil {
			if !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrInvalid) {
				t.Fatalf("unexpected error: %v", err)
			}
			if out != nil || contentType != "" {
				t.Fatal("output with an error")
			}
			return
		}
		img := decodeOutput(t, out, contentType)
		if b := img.Bounds(); b.Empty() || b.Dx() > MaxSide || b.Dy() > MaxSide {
			t.Fatalf("output bounds %v", b)
		}
		if bytes.Contains(out, []byte(marker)) {
			t.Fatal("output holds the EXIF marker")
		}
	})
}
