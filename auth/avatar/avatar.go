// Package avatar turns uploaded avatar images into safe, metadata-free files.
//
// Process accepts PNG, JPEG, GIF and WebP, recognised by their content alone.
// It checks the dimensions in the header before any pixel is decoded, then
// decodes and re-encodes the image, so nothing of the upload (EXIF, text
// chunks, trailing bytes, other GIF frames) is ever served back. JPEG stays
// JPEG, with its EXIF orientation applied to the pixels; everything else
// becomes PNG.
package avatar

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/draw"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"

	"golang.org/x/image/webp"
)

// Errors returned by Process.
var (
	// ErrUnsupported means the content is not a PNG, JPEG, GIF or WebP image.
	ErrUnsupported = errors.New("avatar: unsupported image format")
	// ErrInvalid means the content is one of the supported formats but cannot
	// be decoded, has a zero side, or has a side longer than MaxSide.
	ErrInvalid = errors.New("avatar: invalid image")
)

// MaxSide is the largest accepted width or height, in pixels.
const MaxSide = 4096

// Content types of Process's output.
const (
	ContentTypeJPEG = "image/jpeg"
	ContentTypePNG  = "image/png"
)

// jpegQuality is the quality JPEG avatars are re-encoded with.
const jpegQuality = 88

// format is one supported input format.
type format struct {
	name         string
	decodeConfig func(io.Reader) (image.Config, error)
	decode       func(io.Reader) (image.Image, error)
}

var (
	formatPNG  = &format{"PNG", png.DecodeConfig, png.Decode}
	formatJPEG = &format{"JPEG", jpeg.DecodeConfig, jpeg.Decode}
	formatGIF  = &format{"GIF", gif.DecodeConfig, gif.Decode} // gif.Decode reads the first frame only
	formatWebP = &format{"WebP", webp.DecodeConfig, webp.Decode}
)

// sniff recognises data by its magic bytes; nil means unsupported.
func sniff(data []byte) *format {
	switch {
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		return formatPNG
	case bytes.HasPrefix(data, []byte("\xff\xd8\xff")):
		return formatJPEG
	case bytes.HasPrefix(data, []byte("GIF87a")), bytes.HasPrefix(data, []byte("GIF89a")):
		return formatGIF
	case len(data) >= 12 && string(data[:4]) == "RIFF" && string(data[8:12]) == "WEBP":
		return formatWebP
	}
	return nil
}

// Process sniffs data, checks its dimensions from the header before decoding
// any pixels, decodes it (a GIF's first frame only) and re-encodes it without
// any metadata: JPEG input becomes JPEG (with its EXIF orientation applied),
// everything else becomes PNG. It returns the new bytes and their content
// type, ContentTypeJPEG or ContentTypePNG.
//
// The error is ErrUnsupported when data is not PNG, JPEG, GIF or WebP, and
// wraps ErrInvalid when it is one of them but cannot be decoded or its
// dimensions are zero or over MaxSide.
func Process(data []byte) (out []byte, contentType string, err error) {
	f := sniff(data)
	if f == nil {
		return nil, "", ErrUnsupported
	}
	cfg, err := f.decodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, "", fmt.Errorf("%w: %s header: %v", ErrInvalid, f.name, err)
	}
	if err := checkSize(cfg.Width, cfg.Height); err != nil {
		return nil, "", err
	}
	img, err := f.decode(bytes.NewReader(data))
	if err != nil {
		return nil, "", fmt.Errorf("%w: %s: %v", ErrInvalid, f.name, err)
	}
	// The decoders check their pixels against their headers; this guards the
	// encoders below should one of them ever disagree.
	if err := checkSize(img.Bounds().Dx(), img.Bounds().Dy()); err != nil {
		return nil, "", err
	}

	var buf bytes.Buffer
	if f == formatJPEG {
		img = orient(img, exifOrientation(data))
		if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: jpegQuality}); err != nil {
			return nil, "", fmt.Errorf("avatar: encode JPEG: %w", err)
		}
		return buf.Bytes(), ContentTypeJPEG, nil
	}
	if f == formatGIF {
		img = onCanvas(img, cfg.Width, cfg.Height)
	}
	if err := png.Encode(&buf, img); err != nil {
		return nil, "", fmt.Errorf("avatar: encode PNG: %w", err)
	}
	return buf.Bytes(), ContentTypePNG, nil
}

func checkSize(w, h int) error {
	if w < 1 || h < 1 || w > MaxSide || h > MaxSide {
		return fmt.Errorf("%w: %d×%d pixels (each side must be 1 to %d)", ErrInvalid, w, h, MaxSide)
	}
	return nil
}

// onCanvas places a GIF frame on its logical screen of w×h pixels, leaving
// the rest transparent. A frame that already covers the screen is returned
// as it is.
func onCanvas(frame image.Image, w, h int) image.Image {
	screen := image.Rect(0, 0, w, h)
	if frame.Bounds() == screen {
		return frame
	}
	canvas := image.NewNRGBA(screen)
	draw.Draw(canvas, frame.Bounds(), frame, frame.Bounds().Min, draw.Src)
	return canvas
}
