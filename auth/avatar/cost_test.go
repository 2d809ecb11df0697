package avatar

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"testing"
)

func TestDecodeCost(t *testing.T) {
	const w, h = 64, 32
	enc := func(t *testing.T, img image.Image, jpg bool) []byte {
		t.Helper()
		var b bytes.Buffer
		var err error
		switch {
		case jpg:
			err = jpeg.Encode(&b, img, nil)
		default:
			err = png.Encode(&b, img)
		}
		if err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	rect := image.Rect(0, 0, w, h)
	opaque64 := image.NewRGBA64(rect)
	for i := range opaque64.Pix {
		opaque64.Pix[i] = 0xff
	}
	var gifBuf bytes.Buffer
	if err := gif.Encode(&gifBuf, image.NewPaletted(rect, color.Palette{color.Black, color.White}), nil); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		data     []byte
		perPixel int64
	}{
		{"16-bit PNG: RGBA64", enc(t, opaque64, false), 8},
		{"16-bit PNG with alpha: NRGBA64", enc(t, image.NewNRGBA64(rect), false), 8},
		{"8-bit PNG with alpha: NRGBA", enc(t, image.NewNRGBA(rect), false), 4},
		{"gray PNG", enc(t, image.NewGray(rect), false), 1},
		{"16-bit gray PNG", enc(t, image.NewGray16(rect), false), 2},
		{"JPEG", enc(t, image.NewRGBA(rect), true), 4},
		{"gray JPEG", enc(t, image.NewGray(rect), true), 1},
		{"GIF: frame and canvas", gifBuf.Bytes(), 5},
	}
	for _, c := range cases {
		got, err := DecodeCost(c.data)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if want := w*h*c.perPixel + 2*int64(len(c.data)) + decodeOverhead; got != want {
			t.Errorf("%s: cost %d, want %d (%d bytes a pixel)", c.name, got, want, c.perPixel)
		}
	}
	if _, err := DecodeCost([]byte("not an image")); !errors.Is(err, ErrUnsupported) {
		t.Errorf("not an image: %v, want ErrUnsupported", err)
	}
	if _, err := DecodeCost(pngHeaderOnly(MaxSide+1, 1)); !errors.Is(err, ErrInvalid) {
		t.Errorf("too wide: %v, want ErrInvalid", err)
	}
}
