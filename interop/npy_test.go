package interop_test

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/dtypes/float16"
	"github.com/seqconv/seqconv/interop"
)

// rawNPY builds a .npy file by hand: version major.0, the given header dict (padded to 64 bytes like numpy)
// and raw data.
func rawNPY(major byte, dict string, data []byte) []byte {
	lenSize := 2
	if major > 1 {
		lenSize = 4
	}
	pre := 8 + lenSize
	total := (pre + len(dict) + 1 + 63) / 64 * 64
	h := dict + strings.Repeat(" ", total-pre-len(dict)-1) + "\n"
	b := []byte("\x93NUMPY")
	b = append(b, major, 0)
	if lenSize == 2 {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(h)))
	} else {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(h)))
	}
	b = append(b, h...)
	return append(b, data...)
}

func f32bytes(v ...float32) []byte {
	var b []byte
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}

func mustArray(a *interop.Array, err error) *interop.Array {
	if err != nil {
		panic(err)
	}
	return a
}

func TestNPYRoundTrip(t *testing.T) {
	arrays := []*interop.Array{
		mustArray(interop.NewArray([]float32{1, -2.5, float32(math.Inf(1)), 3e-38, 5, 6}, 2, 3)),
		mustArray(interop.NewArray([]float64{math.Pi, -0, math.MaxFloat64}, 3)),
		mustArray(interop.NewArray([]int64{-1 << 62, 7}, 2, 1)),
		mustArray(interop.NewArray([]int32{-5, 1 << 30, 0, 2}, 2, 2)),
		mustArray(interop.NewArray([]uint8{0, 255, 7}, 3)),
		mustArray(interop.NewArray([]float16.Float16{float16.FromFloat32(1.5), float16.FromFloat32(-2)}, 2)),
		mustArray(interop.NewArray([]bool{true, false, true}, 3, 1, 1)),
		mustArray(interop.NewArray([]int64{42})),             // scalar
		mustArray(interop.NewArray([]float32{}, 0, 5)),       // empty
		mustArray(interop.NewArray([]uint64{1 << 63}, 1)),    // high bit
		mustArray(interop.NewArray([]int8{-128, 127}, 2)),    // 1-byte signed
		mustArray(interop.NewArray([]uint16{65535, 1}, 2)),   // 2-byte unsigned
		mustArray(interop.NewArray([]int16{-32768, 1}, 2)),   // 2-byte signed
		mustArray(interop.NewArray([]uint32{1 << 31, 1}, 2)), // 4-byte unsigned
	}
	for _, a := range arrays {
		var buf bytes.Buffer
		if err := interop.WriteNPY(&buf, a); err != nil {
			t.Fatalf("%s: %v", a, err)
		}
		b := buf.Bytes()
		hlen := int(binary.LittleEndian.Uint16(b[8:10]))
		if b[6] != 1 || (10+hlen)%64 != 0 || b[10+hlen-1] != '\n' {
			t.Errorf("%s: header not a 64-byte aligned v1.0 header: %q", a, b[:10+hlen])
		}
		back, err := interop.ReadNPY(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", a, err)
		}
		if back.DType != a.DType || !reflect.DeepEqual(back.Shape, a.Shape) && !(len(back.Shape) == 0 && len(a.Shape) == 0) ||
			!bitEqual(back.Data, a.Data) {
			t.Errorf("round trip of %s %v gave %s %v", a, a.Data, back, back.Data)
		}
	}
	// The exact header numpy writes.
	var buf bytes.Buffer
	_ = interop.WriteNPY(&buf, arrays[0])
	want := "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"
	if !strings.HasPrefix(buf.String()[10:], want) {
		t.Errorf("header %q, want %q", buf.String()[10:10+len(want)], want)
	}
	buf.Reset()
	_ = interop.WriteNPY(&buf, arrays[7])
	if !strings.Contains(buf.String(), "'descr': '<i8', 'fortran_order': False, 'shape': (), }") {
		t.Errorf("scalar header %q", buf.String()[:64])
	}
	buf.Reset()
	_ = interop.WriteNPY(&buf, arrays[4])
	if !strings.Contains(buf.String(), "'descr': '|u1', 'fortran_order': False, 'shape': (3,), }") {
		t.Errorf("1-d header %q", buf.String()[:64])
	}
}

// TestReadNPYVariants reads headers as other numpy versions (or hand-written files) produce them.
func TestReadNPYVariants(t *testing.T) {
	data := f32bytes(1, 2, 3, 4, 5, 6)
	for _, c := range []struct {
		name  string
		file  []byte
		shape []int
	}{
		{"v1", rawNPY(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", data), []int{2, 3}},
		{"v2", rawNPY(2, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }", data), []int{3, 2}},
		{"v3 utf8", rawNPY(3, "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", data), []int{6}},
		{"no trailing comma", rawNPY(1, "{'descr':'<f4','fortran_order':False,'shape':(6,)}", data), []int{6}},
		{"key order, double quotes", rawNPY(1, `{"shape": (1, 6), "fortran_order": False, "descr": "<f4"}`, data), []int{1, 6}},
		{"python2 longs", rawNPY(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 3L), }", data), []int{2, 3}},
		{"fortran 1-d", rawNPY(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", data), []int{6}},
	} {
		a, err := interop.ReadNPY(bytes.NewReader(c.file))
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !reflect.DeepEqual(a.Shape, c.shape) || !reflect.DeepEqual(a.Data, []float32{1, 2, 3, 4, 5, 6}) {
			t.Errorf("%s: got %s %v", c.name, a, a.Data)
		}
	}
	// '<f2' and '|u1'.
	a, err := interop.ReadNPY(bytes.NewReader(rawNPY(1, "{'descr': '<f2', 'fortran_order': False, 'shape': (1,), }",
		[]byte{0x00, 0x3c})))
	if err != nil || a.DType != dtypes.Float16 || a.Data.([]float16.Float16)[0].Float32() != 1 {
		t.Errorf("<f2: %v %v", a, err)
	}
	a, err = interop.ReadNPY(bytes.NewReader(rawNPY(1, "{'descr': '|u1', 'fortran_order': False, 'shape': (2,), }",
		[]byte{9, 200})))
	if err != nil || a.DType != dtypes.Uint8 || !reflect.DeepEqual(a.Data, []uint8{9, 200}) {
		t.Errorf("|u1: %v %v", a, err)
	}
}

// TestReadNPYErrors checks that corrupt or unsupported input is a clear error, never a panic or a huge
// allocation.
func TestReadNPYErrors(t *testing.T) {
	good := rawNPY(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", f32bytes(1, 2, 3, 4, 5, 6))
	for _, c := range []struct {
		name, want string
		file       []byte
	}{
		{"empty", "empty input", nil},
		{"bad magic", "bad magic", append([]byte("\x93NUMPX"), good[6:]...)},
		{"version", "version 4.0", append([]byte("\x93NUMPY\x04\x00"), good[8:]...)},
		{"truncated preamble", "truncated", good[:5]},
		{"truncated header", "truncated header", good[:40]},
		{"truncated data", "want 24 bytes, got 20: truncated", good[:len(good)-4]},
		{"big-endian", "big-endian", rawNPY(1, "{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }", f32bytes(1))},
		{"fortran", "fortran_order=True", rawNPY(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }", f32bytes(1))},
		{"object dtype", "unsupported dtype \"|O\"", rawNPY(1, "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", nil)},
		{"complex dtype", "unsupported dtype \"<c8\"", rawNPY(1, "{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", nil)},
		{"structured", "structured", rawNPY(1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", nil)},
		{"missing key", "missing key 'shape'", rawNPY(1, "{'descr': '<f4', 'fortran_order': False, }", nil)},
		{"extra key", "unexpected key", rawNPY(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), 'x': 1}", nil)},
		{"negative dim", "want a non-negative integer", rawNPY(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", nil)},
		{"bad tuple", "'shape'", rawNPY(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1 2), }", nil)},
		{"huge shape", "truncated", rawNPY(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (100000, 100000, 1000), }", f32bytes(1))},
		{"overflow", "overflow", rawNPY(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296), }", nil)},
		{"dim overflow", "'shape'", rawNPY(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999999,), }", nil)},
		{"huge v2 header", "header length", []byte("\x93NUMPY\x02\x00\xff\xff\xff\xff")},
		{"trailing text", "after the dict", rawNPY(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), } x", f32bytes(1))},
	} {
		a, err := interop.ReadNPY(bytes.NewReader(c.file))
		if err == nil {
			t.Errorf("%s: no error, got %s", c.name, a)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q does not mention %q", c.name, err, c.want)
		}
	}
	// The file name is in errors of ReadNPYFile.
	path := filepath.Join(t.TempDir(), "bad.npy")
	if err := os.WriteFile(path, good[:len(good)-1], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := interop.ReadNPYFile(path); err == nil || !strings.Contains(err.Error(), "bad.npy") {
		t.Errorf("ReadNPYFile error %v does not name the file", err)
	}
	// Invalid arrays are not written.
	for _, a := range []*interop.Array{
		{DType: dtypes.Float32, Shape: []int{3}, Data: []float32{1, 2}},
		{DType: dtypes.Float32, Shape: []int{2}, Data: []float64{1, 2}},
		{DType: dtypes.Complex64, Shape: []int{}, Data: []complex64{1}},
		nil,
	} {
		if err := interop.WriteNPY(&bytes.Buffer{}, a); err == nil {
			t.Errorf("WriteNPY(%v): no error", a)
		}
	}
}

func TestNPZ(t *testing.T) {
	dir := t.TempDir()
	arrays := map[string]*interop.Array{
		"b.weight":    mustArray(interop.NewArray([]float32{1, 2, 3, 4}, 2, 2)),
		"a.counter":   mustArray(interop.NewArray([]int64{12})),
		"z.bytes":     mustArray(interop.NewArray([]uint8{1, 2, 3}, 3)),
		"m.double.v3": mustArray(interop.NewArray([]float64{0.5}, 1, 1, 1)),
	}
	order := []string{"z.bytes", "b.weight", "a.counter", "m.double.v3"}
	for _, c := range []struct {
		name   string
		write  func(string, map[string]*interop.Array, []string) error
		method uint16
	}{{"stored", interop.WriteNPZ, zip.Store}, {"deflated", interop.WriteNPZCompressed, zip.Deflate}} {
		path := filepath.Join(dir, c.name+".npz")
		if err := c.write(path, arrays, order); err != nil {
			t.Fatal(err)
		}
		back, keys, err := interop.ReadNPZ(path)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(keys, order) {
			t.Errorf("%s: keys %v, want %v", c.name, keys, order)
		}
		assertSameArrays(t, back, arrays)
		z, err := zip.OpenReader(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range z.File {
			if f.Method != c.method || !strings.HasSuffix(f.Name, ".npy") {
				t.Errorf("%s: entry %s method %d, want %d", c.name, f.Name, f.Method, c.method)
			}
		}
		z.Close()
	}
	// nil order: sorted keys.
	path := filepath.Join(dir, "sorted.npz")
	if err := interop.WriteNPZ(path, arrays, nil); err != nil {
		t.Fatal(err)
	}
	if _, keys, err := interop.ReadNPZ(path); err != nil || !reflect.DeepEqual(keys,
		[]string{"a.counter", "b.weight", "m.double.v3", "z.bytes"}) {
		t.Errorf("sorted keys %v %v", keys, err)
	}
	// Bad orders and invalid arrays are errors that leave the existing file untouched.
	before, _ := os.ReadFile(path)
	for _, c := range []struct {
		order []string
		want  string
	}{
		{[]string{"a.counter", "b.weight", "m.double.v3"}, `"z.bytes" missing from order`},
		{append(order, "nope"), `"nope" in order has no array`},
		{append(order, "z.bytes"), `"z.bytes" listed twice`},
	} {
		if err := interop.WriteNPZ(path, arrays, c.order); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("order %v: error %v, want %q", c.order, err, c.want)
		}
	}
	bad := map[string]*interop.Array{"x": {DType: dtypes.Float32, Shape: []int{5}, Data: []float32{1}}}
	if err := interop.WriteNPZ(path, bad, nil); err == nil || !strings.Contains(err.Error(), `"x"`) {
		t.Errorf("invalid array: error %v does not name it", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, before) {
		t.Errorf("failed writes changed the file")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 3 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}

// writeZip writes a zip archive with the given entries (name, content, method).
func writeZip(t *testing.T, path string, entries ...struct {
	name string
	data []byte
}) {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: e.name, Method: zip.Deflate})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(e.data)
	}
	zw.Close()
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReadNPZErrors(t *testing.T) {
	dir := t.TempDir()
	good := rawNPY(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", f32bytes(1, 2))
	type entry = struct {
		name string
		data []byte
	}
	for _, c := range []struct {
		name    string
		entries []entry
		want    []string
	}{
		{"truncated entry", []entry{{"ok.npy", good}, {"w.npy", good[:len(good)-1]}}, []string{`entry "w.npy"`, "truncated"}},
		{"trailing bytes", []entry{{"w.npy", append(append([]byte{}, good...), 0)}}, []string{`entry "w.npy"`, "unexpected bytes"}},
		{"not npy", []entry{{"readme.txt", []byte("hi")}}, []string{`entry "readme.txt"`, "NAME.npy"}},
		{"big-endian", []entry{{"b.npy", rawNPY(1, "{'descr': '>f8', 'fortran_order': False, 'shape': (), }", make([]byte, 8))}},
			[]string{`entry "b.npy"`, "big-endian"}},
	} {
		path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".npz")
		writeZip(t, path, c.entries...)
		_, _, err := interop.ReadNPZ(path)
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		for _, w := range append(c.want, filepath.Base(path)) {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", c.name, err, w)
			}
		}
	}
	// Not a zip at all, and a zip whose stored data was corrupted (CRC-32 mismatch).
	path := filepath.Join(dir, "notzip.npz")
	os.WriteFile(path, good, 0o644)
	if _, _, err := interop.ReadNPZ(path); err == nil || !strings.Contains(err.Error(), "zip") {
		t.Errorf("not a zip: %v", err)
	}
	path = filepath.Join(dir, "crc.npz")
	if err := interop.WriteNPZ(path, map[string]*interop.Array{"x": mustArray(interop.NewArray([]float32{1, 2}, 2))}, nil); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	i := bytes.Index(b, f32bytes(1, 2))
	b[i] ^= 1
	os.WriteFile(path, b, 0o644)
	if _, _, err := interop.ReadNPZ(path); err == nil || !strings.Contains(err.Error(), `entry "x.npy"`) {
		t.Errorf("corrupted data: %v", err)
	}
}
