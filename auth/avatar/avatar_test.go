package avatar

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/color/palette"
	"image/gif"
	"image/jpeg"
	"image/png"
	"os"
	"runtime"
	"testing"
)

// Test images are generated here; the only file in testdata is a small lossy
// WebP from golang.org/x/image's test data, since x/image has no encoder.

var (
	red    = color.NRGBA{R: 0xff, A: 0xff}
	blue   = color.NRGBA{B: 0xff, A: 0xff}
	teal   = color.NRGBA{G: 0x80, B: 0x80, A: 0xff}
	marker = "SECRET-EXIF-MARKER"
)

// solid returns a w×h image of one colour.
func solid(w, h int, c color.Color) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, c)
		}
	}
	return img
}

// halves returns a w×h image whose left half is red and right half blue.
func halves(w, h int) *image.NRGBA {
	img := solid(w, h, blue)
	for y := 0; y < h; y++ {
		for x := 0; x < w/2; x++ {
			img.Set(x, y, red)
		}
	}
	return img
}

func encodePNG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func encodeJPEG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func encodeGIF(t testing.TB, g *gif.GIF) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := gif.EncodeAll(&buf, g); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// paletted returns a frame of one palette colour covering r.
func paletted(r image.Rectangle, c color.Color) *image.Paletted {
	p := image.NewPaletted(r, palette.Plan9)
	idx := uint8(p.Palette.Index(c))
	for i := range p.Pix {
		p.Pix[i] = idx
	}
	return p
}

// pngChunk encodes one PNG chunk with its CRC.
func pngChunk(typ string, data []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
	b = append(b, typ...)
	b = append(b, data...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b[4:]))
}

// pngHeaderOnly is a PNG of only a signature, an IHDR claiming w×h pixels
// (8-bit RGBA) and IEND: 45 bytes.
func pngHeaderOnly(w, h uint32) []byte {
	ihdr := binary.BigEndian.AppendUint32(nil, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, 8, 6, 0, 0, 0)
	b := []byte("\x89PNG\r\n\x1a\n")
	b = append(b, pngChunk("IHDR", ihdr)...)
	return append(b, pngChunk("IEND", nil)...)
}

// withPNGSize rewrites the dimensions in a PNG's IHDR, keeping its CRC valid.
func withPNGSize(p []byte, w, h uint32) []byte {
	out := append([]byte{}, p...)
	ihdr := out[8 : 8+25]
	binary.BigEndian.PutUint32(ihdr[8:], w)
	binary.BigEndian.PutUint32(ihdr[12:], h)
	binary.BigEndian.PutUint32(ihdr[21:], crc32.ChecksumIEEE(ihdr[4:21]))
	return out
}

// withJPEGSize rewrites the dimensions in a JPEG's baseline SOF segment.
func withJPEGSize(t testing.TB, j []byte, w, h uint16) []byte {
	t.Helper()
	i := bytes.Index(j, []byte{0xff, 0xc0})
	if i < 0 {
		t.Fatal("no SOF0 marker")
	}
	out := append([]byte{}, j...)
	binary.BigEndian.PutUint16(out[i+5:], h)
	binary.BigEndian.PutUint16(out[i+7:], w)
	return out
}

// withPNGText inserts a tEXt chunk right after the IHDR of a PNG.
func withPNGText(p []byte, text string) []byte {
	const afterIHDR = 8 + 25
	out := append([]byte{}, p[:afterIHDR]...)
	out = append(out, pngChunk("tEXt", []byte("Comment\x00"+text))...)
	return append(out, p[afterIHDR:]...)
}

// withJPEGSegment inserts a marker segment right after a JPEG's SOI.
func withJPEGSegment(jpg []byte, marker byte, payload []byte) []byte {
	out := append([]byte{}, jpg[:2]...)
	out = append(out, 0xff, marker)
	out = binary.BigEndian.AppendUint16(out, uint16(len(payload)+2))
	out = append(out, payload...)
	return append(out, jpg[2:]...)
}

// exifPayload builds an APP1 EXIF payload whose IFD0 holds an
// ImageDescription (note) and an Orientation tag.
func exifPayload(order binary.AppendByteOrder, orientation uint16, note string) []byte {
	t := []byte("MM")
	if order == binary.LittleEndian {
		t = []byte("II")
	}
	t = order.AppendUint16(t, 42)
	t = order.AppendUint32(t, 8)
	const entries = 2
	noteOffset := 8 + 2 + 12*entries + 4
	t = order.AppendUint16(t, entries)
	t = order.AppendUint16(t, 0x010e) // ImageDescription
	t = order.AppendUint16(t, 2)      // ASCII
	t = order.AppendUint32(t, uint32(len(note)+1))
	t = order.AppendUint32(t, uint32(noteOffset))
	t = order.AppendUint16(t, 0x0112) // Orientation
	t = order.AppendUint16(t, 3)      // SHORT
	t = order.AppendUint32(t, 1)
	t = order.AppendUint16(t, orientation)
	t = order.AppendUint16(t, 0)
	t = order.AppendUint32(t, 0) // no next IFD
	t = append(t, note...)
	t = append(t, 0)
	return append([]byte("Exif\x00\x00"), t...)
}

// bitWriter writes the least significant bit first, as VP8L reads.
type bitWriter struct {
	buf  []byte
	acc  uint64
	nacc uint
}

func (w *bitWriter) write(v uint32, n uint) {
	w.acc |= uint64(v) << w.nacc
	w.nacc += n
	for w.nacc >= 8 {
		w.buf = append(w.buf, byte(w.acc))
		w.acc >>= 8
		w.nacc -= 8
	}
}

func (w *bitWriter) bytes() []byte {
	if w.nacc > 0 {
		return append(w.buf, byte(w.acc))
	}
	return w.buf
}

// riffChunk encodes one RIFF chunk, padded to an even length.
func riffChunk(fourCC string, data []byte) []byte {
	b := append([]byte(fourCC), binary.LittleEndian.AppendUint32(nil, uint32(len(data)))...)
	b = append(b, data...)
	if len(data)%2 == 1 {
		b = append(b, 0)
	}
	return b
}

func riffWebP(chunks ...[]byte) []byte {
	body := []byte("WEBP")
	for _, c := range chunks {
		body = append(body, c...)
	}
	return append(append([]byte("RIFF"), binary.LittleEndian.AppendUint32(nil, uint32(len(body)))...), body...)
}

// vp8lSolid is a lossless WebP bitstream of a w×h image of one colour: every
// prefix code has a single symbol, so the pixels take no bits at all.
func vp8lSolid(w, h int, c color.NRGBA) []byte {
	var bw bitWriter
	bw.write(0x2f, 8) // signature
	bw.write(uint32(w-1), 14)
	bw.write(uint32(h-1), 14)
	bw.write(1, 1) // alpha hint
	bw.write(0, 3) // version
	bw.write(0, 1) // no transform
	bw.write(0, 1) // no colour cache
	bw.write(0, 1) // no meta prefix codes
	// Prefix codes in order: green, red, blue, alpha, distance.
	for _, sym := range []uint8{c.G, c.R, c.B, c.A, 0} {
		bw.write(1, 1) // simple code
		bw.write(0, 1) // one symbol
		bw.write(1, 1) // of 8 bits
		bw.write(uint32(sym), 8)
	}
	return bw.bytes()
}

// webpSolid is a simple-format lossless WebP file.
func webpSolid(w, h int, c color.NRGBA) []byte {
	return riffWebP(riffChunk("VP8L", vp8lSolid(w, h, c)))
}

// webpExtended is an extended-format (VP8X) WebP file whose canvas is
// canvasW×canvasH around a lossless w×h bitstream.
func webpExtended(canvasW, canvasH, w, h int, c color.NRGBA) []byte {
	x := []byte{0x10, 0, 0, 0} // alpha flag, reserved
	x = append(x, byte(canvasW-1), byte((canvasW-1)>>8), byte((canvasW-1)>>16))
	x = append(x, byte(canvasH-1), byte((canvasH-1)>>8), byte((canvasH-1)>>16))
	return riffWebP(riffChunk("VP8X", x), riffChunk("VP8L", vp8lSolid(w, h, c)))
}

// decodeOutput decodes Process's output by its content type and checks the
// bytes really are of that type.
func decodeOutput(t *testing.T, out []byte, contentType string) image.Image {
	t.Helper()
	var (
		img image.Image
		err error
	)
	switch contentType {
	case ContentTypePNG:
		img, err = png.Decode(bytes.NewReader(out))
	case ContentTypeJPEG:
		img, err = jpeg.Decode(bytes.NewReader(out))
	default:
		t.Fatalf("content type %q", contentType)
	}
	if err != nil {
		t.Fatalf("output is not a valid %s: %v", contentType, err)
	}
	return img
}

// near reports whether two colours differ by at most tol per channel (8-bit).
func near(a, b color.Color, tol int) bool {
	ar, ag, ab, aa := a.RGBA()
	br, bg, bb, ba := b.RGBA()
	for _, d := range []int{int(ar>>8) - int(br>>8), int(ag>>8) - int(bg>>8), int(ab>>8) - int(bb>>8), int(aa>>8) - int(ba>>8)} {
		if d < -tol || d > tol {
			return false
		}
	}
	return true
}

func TestProcessFormats(t *testing.T) {
	lossyWebP, err := os.ReadFile("testdata/blue-purple-pink.lossy.webp")
	if err != nil {
		t.Fatal(err)
	}
	twoFrames := &gif.GIF{
		Image: []*image.Paletted{paletted(image.Rect(0, 0, 8, 6), red), paletted(image.Rect(0, 0, 8, 6), blue)},
		Delay: []int{10, 10},
	}
	offsetFrame := &gif.GIF{
		Image:  []*image.Paletted{paletted(image.Rect(4, 2, 8, 6), red)},
		Delay:  []int{0},
		Config: image.Config{Width: 8, Height: 6, ColorModel: color.Palette(palette.Plan9)},
	}

	tests := []struct {
		name     string
		in       []byte
		wantType string
		wantW    int
		wantH    int
		// Expected colour at (x, y), with a tolerance for lossy formats.
		x, y      int
		wantColor color.Color
		tol       int
		absent    string // must not appear in the output
	}{
		{name: "PNG", in: encodePNG(t, solid(7, 5, teal)), wantType: ContentTypePNG,
			wantW: 7, wantH: 5, x: 6, y: 4, wantColor: teal},
		{name: "PNG text chunk dropped", in: withPNGText(encodePNG(t, solid(7, 5, teal)), marker),
			wantType: ContentTypePNG, wantW: 7, wantH: 5, x: 0, y: 0, wantColor: teal, absent: marker},
		{name: "PNG 4096x1", in: encodePNG(t, solid(MaxSide, 1, teal)), wantType: ContentTypePNG,
			wantW: MaxSide, wantH: 1, x: MaxSide - 1, y: 0, wantColor: teal},
		{name: "PNG 1x4096", in: encodePNG(t, solid(1, MaxSide, teal)), wantType: ContentTypePNG,
			wantW: 1, wantH: MaxSide, x: 0, y: MaxSide - 1, wantColor: teal},
		{name: "JPEG", in: encodeJPEG(t, halves(32, 16)), wantType: ContentTypeJPEG,
			wantW: 32, wantH: 16, x: 2, y: 2, wantColor: red, tol: 24},
		{name: "JPEG EXIF dropped", in: withJPEGSegment(encodeJPEG(t, halves(32, 16)), 0xe1, exifPayload(binary.BigEndian, 1, marker)),
			wantType: ContentTypeJPEG, wantW: 32, wantH: 16, x: 2, y: 2, wantColor: red, tol: 24, absent: marker},
		{name: "JPEG comment dropped", in: withJPEGSegment(encodeJPEG(t, halves(32, 16)), 0xfe, []byte(marker)),
			wantType: ContentTypeJPEG, wantW: 32, wantH: 16, x: 30, y: 2, wantColor: blue, tol: 24, absent: marker},
		{name: "JPEG orientation 6 rotates clockwise", in: withJPEGSegment(encodeJPEG(t, halves(32, 16)), 0xe1, exifPayload(binary.LittleEndian, 6, marker)),
			// The red left half becomes the top half.
			wantType: ContentTypeJPEG, wantW: 16, wantH: 32, x: 8, y: 2, wantColor: red, tol: 24, absent: marker},
		{name: "JPEG orientation 6, bottom", in: withJPEGSegment(encodeJPEG(t, halves(32, 16)), 0xe1, exifPayload(binary.BigEndian, 6, marker)),
			wantType: ContentTypeJPEG, wantW: 16, wantH: 32, x: 8, y: 29, wantColor: blue, tol: 24},
		{name: "JPEG grayscale", in: encodeJPEG(t, image.NewGray(image.Rect(0, 0, 9, 9))), wantType: ContentTypeJPEG,
			wantW: 9, wantH: 9, x: 4, y: 4, wantColor: color.Black, tol: 4},
		{name: "GIF", in: encodeGIF(t, &gif.GIF{Image: []*image.Paletted{paletted(image.Rect(0, 0, 8, 6), red)}, Delay: []int{0}}),
			wantType: ContentTypePNG, wantW: 8, wantH: 6, x: 7, y: 5, wantColor: red},
		{name: "GIF with HTML tail", in: append(encodeGIF(t, &gif.GIF{Image: []*image.Paletted{paletted(image.Rect(0, 0, 8, 6), red)}, Delay: []int{0}}),
			"<html><script>alert(1)</script>"...),
			wantType: ContentTypePNG, wantW: 8, wantH: 6, x: 0, y: 0, wantColor: red, absent: "<script>"},
		{name: "animated GIF keeps first frame", in: encodeGIF(t, twoFrames), wantType: ContentTypePNG,
			wantW: 8, wantH: 6, x: 3, y: 3, wantColor: red},
		{name: "GIF frame smaller than screen: inside", in: encodeGIF(t, offsetFrame), wantType: ContentTypePNG,
			wantW: 8, wantH: 6, x: 5, y: 3, wantColor: red},
		{name: "GIF frame smaller than screen: outside is transparent", in: encodeGIF(t, offsetFrame), wantType: ContentTypePNG,
			wantW: 8, wantH: 6, x: 1, y: 1, wantColor: color.Transparent},
		{name: "WebP lossless", in: webpSolid(5, 3, teal), wantType: ContentTypePNG,
			wantW: 5, wantH: 3, x: 4, y: 2, wantColor: teal},
		{name: "WebP extended", in: webpExtended(5, 3, 5, 3, color.NRGBA{R: 0x10, G: 0x20, B: 0x30, A: 0x80}), wantType: ContentTypePNG,
			wantW: 5, wantH: 3, x: 0, y: 0, wantColor: color.NRGBA{R: 0x10, G: 0x20, B: 0x30, A: 0x80}},
		{name: "WebP lossy", in: lossyWebP, wantType: ContentTypePNG, wantW: 150, wantH: 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, contentType, err := Process(tt.in)
			if err != nil {
				t.Fatalf("Process: %v", err)
			}
			if contentType != tt.wantType {
				t.Fatalf("content type = %q, want %q", contentType, tt.wantType)
			}
			img := decodeOutput(t, out, contentType)
			if b := img.Bounds(); b != image.Rect(0, 0, tt.wantW, tt.wantH) {
				t.Errorf("bounds = %v, want %dx%d", b, tt.wantW, tt.wantH)
			}
			if tt.wantColor != nil {
				if got := img.At(tt.x, tt.y); !near(got, tt.wantColor, tt.tol) {
					t.Errorf("pixel (%d,%d) = %v, want %v", tt.x, tt.y, got, tt.wantColor)
				}
			}
			if tt.absent != "" && !bytes.Contains(tt.in, []byte(tt.absent)) {
				t.Fatalf("bad test: input lacks %q", tt.absent)
			}
			if tt.absent != "" && bytes.Contains(out, []byte(tt.absent)) {
				t.Errorf("output contains %q", tt.absent)
			}
			if contentType == ContentTypeJPEG && (bytes.Contains(out, []byte("Exif")) || bytes.Contains(out, []byte{0xff, 0xe1})) {
				t.Error("output JPEG has an EXIF segment")
			}
		})
	}
}

func TestProcessMaxSide(t *testing.T) {
	if testing.Short() {
		t.Skip("decodes and encodes 16 megapixels")
	}
	out, contentType, err := Process(encodePNG(t, solid(MaxSide, MaxSide, teal)))
	if err != nil {
		t.Fatalf("Process: %v", err)
	}
	if b := decodeOutput(t, out, contentType).Bounds(); b.Dx() != MaxSide || b.Dy() != MaxSide {
		t.Errorf("bounds = %v", b)
	}
}

func TestProcessErrors(t *testing.T) {
	validPNG := encodePNG(t, solid(16, 16, teal))
	validJPEG := encodeJPEG(t, halves(16, 16))
	validGIF := encodeGIF(t, &gif.GIF{Image: []*image.Paletted{paletted(image.Rect(0, 0, 4, 4), red)}, Delay: []int{0}})
	zeroGIF := append([]byte{}, validGIF...)
	zeroGIF[6], zeroGIF[7] = 0, 0 // logical screen width 0

	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrUnsupported},
		{"HTML", []byte("<!DOCTYPE html><html><script>alert(1)</script></html>"), ErrUnsupported},
		{"SVG", []byte(`<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>`), ErrUnsupported},
		{"XML SVG", []byte(`<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"></svg>`), ErrUnsupported},
		{"BMP", append([]byte("BM"), make([]byte, 60)...), ErrUnsupported},
		{"text", []byte("hello, world"), ErrUnsupported},
		{"RIFF but not WebP", append([]byte("RIFF\x04\x00\x00\x00WAVE"), make([]byte, 16)...), ErrUnsupported},
		{"GIF magic cut short", []byte("GIF8"), ErrUnsupported},
		{"PNG magic cut short", validPNG[:4], ErrUnsupported},
		{"HTML before PNG", append([]byte("<html>"), validPNG...), ErrUnsupported},
		{"PNG signature only", validPNG[:8], ErrInvalid},
		{"truncated PNG", validPNG[:len(validPNG)/2], ErrInvalid},
		{"PNG without IDAT", pngHeaderOnly(16, 16), ErrInvalid},
		{"PNG zero width", pngHeaderOnly(0, 16), ErrInvalid},
		{"PNG 4097x1", encodePNG(t, solid(MaxSide+1, 1, teal)), ErrInvalid},
		{"PNG 1x4097", encodePNG(t, solid(1, MaxSide+1, teal)), ErrInvalid},
		{"JPEG SOI only", []byte{0xff, 0xd8, 0xff}, ErrInvalid},
		{"truncated JPEG", validJPEG[:len(validJPEG)/2], ErrInvalid},
		{"JPEG 4097x8", encodeJPEG(t, image.NewGray(image.Rect(0, 0, MaxSide+1, 8))), ErrInvalid},
		{"GIF header only", validGIF[:13], ErrInvalid},
		{"truncated GIF", validGIF[:len(validGIF)-8], ErrInvalid},
		{"GIF zero width", zeroGIF, ErrInvalid},
		{"WebP without chunks", riffWebP(), ErrInvalid},
		{"truncated WebP", webpSolid(5, 3, teal)[:22], ErrInvalid},
		{"WebP 4097x1", webpSolid(MaxSide+1, 1, teal), ErrInvalid},
		{"WebP canvas disagrees with bitstream", webpExtended(4, 4, 5, 3, teal), ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, contentType, err := Process(tt.in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if out != nil || contentType != "" {
				t.Errorf("got %d bytes of %q with an error", len(out), contentType)
			}
		})
	}
}

// TestProcessHugeHeaders feeds tiny files whose headers claim enormous images:
// they must be refused from the header, without allocating the pixels.
func TestProcessHugeHeaders(t *testing.T) {
	// A JPEG header up to a baseline SOF of 65535×65535, 3 components.
	hugeJPEG := []byte{0xff, 0xd8, 0xff, 0xc0, 0, 17, 8, 0xff, 0xff, 0xff, 0xff, 3,
		1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1, 0xff, 0xd9}
	// A GIF89a logical screen of 65535×65535 with a 2-colour table and one
	// full-screen frame.
	hugeGIF := []byte("GIF89a\xff\xff\xff\xff\x80\x00\x00\x00\x00\x00\xff\xff\xff" +
		",\x00\x00\x00\x00\xff\xff\xff\xff\x00\x02\x02\x44\x01\x00;")

	tests := []struct {
		name string
		in   []byte
	}{
		{"PNG 100000x100000", pngHeaderOnly(100000, 100000)},
		{"PNG 2^31-1 square", pngHeaderOnly(1<<31-1, 1<<31-1)},
		// Complete files whose header alone was changed, so a decoder would
		// go on to allocate the pixels.
		{"PNG 8192x8192 with pixel data", withPNGSize(encodePNG(t, solid(16, 16, teal)), 8192, 8192)},
		{"JPEG 8192x8192 with pixel data", withJPEGSize(t, encodeJPEG(t, halves(16, 16)), 8192, 8192)},
		{"JPEG 65535x65535", hugeJPEG},
		{"GIF 65535x65535", hugeGIF},
		{"WebP 16384x16384", webpSolid(16384, 16384, teal)},
		{"WebP small canvas, huge bitstream", webpExtended(1, 1, 16384, 16384, teal)},
		{"WebP huge canvas", webpExtended(1<<24, 1<<24, 16384, 16384, teal)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "PNG 100000x100000" && len(tt.in) != 45 {
				t.Fatalf("bad test: PNG is %d bytes, want 45", len(tt.in))
			}
			var err error
			alloc := allocatedBytes(func() { _, _, err = Process(tt.in) })
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			const limit = 1 << 20
			if alloc > limit {
				t.Errorf("allocated %d bytes, want under %d", alloc, limit)
			}
		})
	}
}

// allocatedBytes reports how many bytes f allocates on the heap.
func allocatedBytes(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func BenchmarkProcess(b *testing.B) {
	img := image.NewRGBA(image.Rect(0, 0, 512, 512))
	for y := 0; y < 512; y++ {
		for x := 0; x < 512; x++ {
			img.Set(x, y, color.RGBA{R: uint8(x), G: uint8(y), B: uint8(x ^ y), A: 0xff})
		}
	}
	in := encodeJPEG(b, img)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Process(in); err != nil {
			b.Fatal(err)
		}
	}
}
