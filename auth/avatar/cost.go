package avatar

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"image/color"
)

// decodeOverhead is what a decode and re-encode take besides the pixels
// (decoder and compressor state, row buffers), on top of twice the input's
// size for the input copy and the re-encoded output.
const decodeOverhead = 1 << 20

// DecodeCost sniffs data and reads its header (no pixel is decoded) and
// returns an upper estimate of the memory, in bytes, that Process needs
// for it: width × height × the bytes per pixel of what the decoder builds
// for that format and colour model (a 16-bit PNG is 8: RGBA64), with the
// extra copies some inputs need (an interlaced PNG's passes, a progressive
// JPEG's coefficients, a rotated JPEG, a GIF frame put on its canvas), plus
// the input and output buffers. Its errors are Process's.
func DecodeCost(data []byte) (int64, error) {
	f := sniff(data)
	if f == nil {
		return 0, ErrUnsupported
	}
	cfg, err := f.decodeConfig(bytes.NewReader(data))
	if err != nil {
		return 0, fmt.Errorf("%w: %s header: %v", ErrInvalid, f.name, err)
	}
	if err := checkSize(cfg.Width, cfg.Height); err != nil {
		return 0, err
	}
	var perPixel int64
	switch f {
	case formatPNG:
		perPixel = modelBytes(cfg.ColorModel)
		if len(data) > 28 && data[28] == 1 { // IHDR interlace method: Adam7
			perPixel *= 2 // each pass is decoded apart, then merged
		}
	case formatJPEG:
		comps := int64(3) // YCbCr (4:4:4 at worst) or RGB
		switch cfg.ColorModel {
		case color.GrayModel:
			comps, perPixel = 1, 1
		case color.CMYKModel:
			comps, perPixel = 4, 8 // the YCbCr/K planes, then the CMYK image
		default:
			perPixel = 4
		}
		if progressiveJPEG(data) {
			perPixel += 4 * comps // every block's coefficients are kept (int32 each)
		}
		if exifOrientation(data) > 1 {
			perPixel += 4 // orient draws into a new RGBA image
		}
	case formatGIF:
		perPixel = 1 + 4 // the paletted frame and, when smaller, its NRGBA canvas
	case formatWebP:
		perPixel = 8 // lossless: ARGB words plus the NRGBA image; lossy needs less
	}
	return int64(cfg.Width)*int64(cfg.Height)*perPixel + 2*int64(len(data)) + decodeOverhead, nil
}

// modelBytes is the bytes per pixel of the image a decoder builds for a
// colour model (8 for the 16-bit RGBA ones).
func modelBytes(m color.Model) int64 {
	switch m {
	case color.GrayModel, color.AlphaModel:
		return 1
	case color.Gray16Model, color.Alpha16Model:
		return 2
	case color.YCbCrModel:
		return 3
	case color.RGBAModel, color.NRGBAModel:
		return 4
	case color.RGBA64Model, color.NRGBA64Model:
		return 8
	}
	if _, ok := m.(color.Palette); ok {
		return 1
	}
	return 8 // unknown: the widest
}

// progressiveJPEG reports whether a JPEG's frame header is progressive
// (SOF2), whose decoder keeps every coefficient until the end.
func progressiveJPEG(jpg []byte) bool {
	for i := 2; i+4 <= len(jpg); {
		if jpg[i] != 0xff {
			return false
		}
		marker := jpg[i+1]
		switch {
		case marker == 0xff:
			i++
			continue
		case marker == 0x01 || marker >= 0xd0 && marker <= 0xd8:
			i += 2
			continue
		case marker == 0xd9 || marker == 0xda:
			return false
		case marker == 0xc2 || marker == 0xc6 || marker == 0xca || marker == 0xce:
			return true
		case marker >= 0xc0 && marker <= 0xcf && marker != 0xc4 && marker != 0xc8 && marker != 0xcc:
			return false // another frame type: baseline or extended
		}
		n := int(binary.BigEndian.Uint16(jpg[i+2:]))
		if n < 2 {
			return false
		}
		i += 2 + n
	}
	return false
}
