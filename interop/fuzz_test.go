package interop_test

import (
	"bytes"
	"testing"

	"github.com/seqconv/seqconv/interop"
)

// FuzzReadNPY checks that ReadNPY never panics, and that whatever it accepts is a valid Array that WriteNPY
// writes and ReadNPY reads back identically. Seeds: testdata/fuzz/FuzzReadNPY and those added here.
func FuzzReadNPY(f *testing.F) {
	f.Add(rawNPY(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", f32bytes(1, 2, 3, 4, 5, 6)))
	f.Add(rawNPY(2, "{'descr': '<i8', 'fortran_order': False, 'shape': (), }", make([]byte, 8)))
	f.Add(rawNPY(3, "{'descr': '|u1', 'fortran_order': False, 'shape': (0, 4), }", nil))
	f.Add(rawNPY(1, "{'descr': '<f2', 'fortran_order': False, 'shape': (1,), }", []byte{0, 0x3c}))
	f.Add(rawNPY(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (99999, 99999), }", nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := interop.ReadNPY(bytes.NewReader(b))
		if err != nil {
			return
		}
		if err := a.Validate(); err != nil {
			t.Fatalf("ReadNPY returned an invalid array: %v", err)
		}
		var buf bytes.Buffer
		if err := interop.WriteNPY(&buf, a); err != nil {
			t.Fatalf("WriteNPY of a read array: %v", err)
		}
		back, err := interop.ReadNPY(&buf)
		if err != nil {
			t.Fatalf("re-reading a written array: %v", err)
		}
		if back.DType != a.DType || len(back.Shape) != len(a.Shape) || !bitEqual(back.Data, a.Data) {
			t.Fatalf("round trip changed %s into %s", a, back)
		}
	})
}

// FuzzReadNPZ checks that ReadNPZFrom never panics on arbitrary archives.
func FuzzReadNPZ(f *testing.F) {
	f.Add([]byte("PK\x05\x06" + string(make([]byte, 18))))
	f.Fuzz(func(t *testing.T, b []byte) {
		arrays, keys, err := interop.ReadNPZFrom(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		if len(arrays) != len(keys) {
			t.Fatalf("%d arrays, %d keys", len(arrays), len(keys))
		}
		for _, k := range keys {
			if err := arrays[k].Validate(); err != nil {
				t.Fatalf("%s: %v", k, err)
			}
		}
	})
}
