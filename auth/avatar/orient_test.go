package avatar

import (
	"encoding/binary"
	"image"
	"image/color"
	"testing"
)

func TestOrient(t *testing.T) {
	// The source is 3×2 pixels, named a–f:
	//	a b c
	//	d e f
	src := image.NewRGBA(image.Rect(10, 20, 13, 22)) // a non-zero origin on purpose
	for i, name := range "abcdef" {
		src.Set(10+i%3, 20+i/3, color.RGBA{R: uint8(name), A: 0xff})
	}
	tests := []struct {
		orientation int
		want        []string // rows
	}{
		{0, []string{"abc", "def"}},
		{1, []string{"abc", "def"}},
		{2, []string{"cba", "fed"}},
		{3, []string{"fed", "cba"}},
		{4, []string{"def", "abc"}},
		{5, []string{"ad", "be", "cf"}},
		{6, []string{"da", "eb", "fc"}},
		{7, []string{"fc", "eb", "da"}},
		{8, []string{"cf", "be", "ad"}},
		{9, []string{"abc", "def"}},
	}
	for _, tt := range tests {
		got := orient(src, tt.orientation)
		b := got.Bounds()
		var rows []string
		for y := b.Min.Y; y < b.Max.Y; y++ {
			var row []byte
			for x := b.Min.X; x < b.Max.X; x++ {
				r, _, _, _ := got.At(x, y).RGBA()
				row = append(row, byte(r>>8))
			}
			rows = append(rows, string(row))
		}
		if len(rows) != len(tt.want) || len(rows[0]) != len(tt.want[0]) {
			t.Errorf("orientation %d: %d×%d, want %d×%d", tt.orientation, len(rows[0]), len(rows), len(tt.want[0]), len(tt.want))
			continue
		}
		for i := range rows {
			if rows[i] != tt.want[i] {
				t.Errorf("orientation %d: rows %q, want %q", tt.orientation, rows, tt.want)
				break
			}
		}
	}
}

func TestExifOrientation(t *testing.T) {
	soi := []byte{0xff, 0xd8}
	app1 := func(payload []byte) []byte { return withJPEGSegment(soi, 0xe1, payload) }
	be := exifPayload(binary.BigEndian, 6, marker)
	le := exifPayload(binary.LittleEndian, 8, marker)

	tiffAt := 6 // the TIFF header follows "Exif\0\0"
	patch := func(p []byte, at int, b ...byte) []byte {
		out := append([]byte{}, p...)
		copy(out[at:], b)
		return out
	}
	// Offsets inside the big-endian payload.
	ifd := tiffAt + 8
	orientationEntry := ifd + 2 + 12

	tests := []struct {
		name string
		jpg  []byte
		want int
	}{
		{"big-endian", app1(be), 6},
		{"little-endian", app1(le), 8},
		{"value 1", app1(exifPayload(binary.BigEndian, 1, "")), 1},
		{"value 3", app1(exifPayload(binary.BigEndian, 3, "")), 3},
		{"after other segments", withJPEGSegment(withJPEGSegment(app1(be), 0xe1, []byte("http://ns.adobe.com/xap/1.0/\x00<x/>")), 0xe0, []byte("JFIF\x00\x01\x01")), 6},
		{"after fill bytes", append([]byte{0xff, 0xd8, 0xff, 0xff}, app1(be)[3:]...), 6},
		{"not a JPEG", be, 1},
		{"empty", nil, 1},
		{"no EXIF", soi, 1},
		{"after start of scan", append(append([]byte{}, soi...), append([]byte{0xff, 0xda, 0, 2}, app1(be)[2:]...)...), 1},
		{"value 0", app1(exifPayload(binary.BigEndian, 0, "")), 1},
		{"value 9", app1(exifPayload(binary.BigEndian, 9, "")), 1},
		{"value 0xffff", app1(exifPayload(binary.BigEndian, 0xffff, "")), 1},
		{"wrong type", app1(patch(be, orientationEntry+3, 4)), 1},
		{"wrong count", app1(patch(be, orientationEntry+7, 2)), 1},
		{"bad byte order", app1(patch(be, tiffAt, 'X', 'X')), 1},
		{"IFD offset past the end", app1(patch(be, tiffAt+4, 0xff, 0xff, 0xff, 0xff)), 1},
		{"IFD offset into header", app1(patch(be, tiffAt+4, 0, 0, 0, 2)), 1},
		{"entry count past the end", app1(patch(be[:orientationEntry], ifd, 0xff, 0xff)), 1},
		{"truncated TIFF", app1(be[:tiffAt+5]), 1},
		{"segment length past the end", patch(app1(be), 4, 0xff, 0xff), 1},
		{"segment length too small", patch(app1(be), 4, 0, 1), 1},
		{"not Exif", app1([]byte("Exif")), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := exifOrientation(tt.jpg); got != tt.want {
				t.Errorf("exifOrientation = %d, want %d", got, tt.want)
			}
		})
	}
}
