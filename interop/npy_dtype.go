// The element types of .npy files: numpy type strings, and the little-endian bytes of each type.

package interop

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/dtypes/float16"
)

// npyType describes one supported .npy element type.
type npyType struct {
	dtype dtypes.DType
	kind  byte // numpy kind: 'f', 'i', 'u', 'b'
	size  int  // bytes per element
}

var npyTypes = []npyType{
	{dtypes.Float16, 'f', 2}, {dtypes.Float32, 'f', 4}, {dtypes.Float64, 'f', 8},
	{dtypes.Int8, 'i', 1}, {dtypes.Int16, 'i', 2}, {dtypes.Int32, 'i', 4}, {dtypes.Int64, 'i', 8},
	{dtypes.Uint8, 'u', 1}, {dtypes.Uint16, 'u', 2}, {dtypes.Uint32, 'u', 4}, {dtypes.Uint64, 'u', 8},
	{dtypes.Bool, 'b', 1},
}

func npyTypeOf(dtype dtypes.DType) (npyType, bool) {
	for _, t := range npyTypes {
		if t.dtype == dtype {
			return t, true
		}
	}
	return npyType{}, false
}

// descr returns the numpy type string of t, e.g. "<f4" or "|u1".
func (t npyType) descr() string {
	order := "<"
	if t.size == 1 {
		order = "|"
	}
	return fmt.Sprintf("%s%c%d", order, t.kind, t.size)
}

// parseDescr maps a numpy type string onto a supported type.
func parseDescr(descr string) (npyType, error) {
	if len(descr) < 3 {
		return npyType{}, fmt.Errorf("unsupported dtype %q: want one of '<f2', '<f4', '<f8', '|i1', '<i2', '<i4', "+
			"'<i8', '|u1', '<u2', '<u4', '<u8', '|b1'", descr)
	}
	order, kind := descr[0], descr[1]
	size, err := strconv.Atoi(descr[2:])
	if err != nil {
		return npyType{}, fmt.Errorf("unsupported dtype %q: bad item size", descr)
	}
	if order == '>' && size > 1 {
		return npyType{}, fmt.Errorf("big-endian dtype %q is not supported: want little-endian ('<')", descr)
	}
	if order != '<' && order != '|' && order != '>' && order != '=' {
		return npyType{}, fmt.Errorf("unsupported dtype %q: want a byte-order prefix '<' or '|'", descr)
	}
	if order == '=' && size > 1 {
		return npyType{}, fmt.Errorf("native-order dtype %q is ambiguous: want an explicit little-endian ('<') dtype", descr)
	}
	for _, t := range npyTypes {
		if t.kind == kind && t.size == size {
			return t, nil
		}
	}
	return npyType{}, fmt.Errorf("unsupported dtype %q: want one of '<f2', '<f4', '<f8', '|i1', '<i2', '<i4', "+
		"'<i8', '|u1', '<u2', '<u4', '<u8', '|b1'", descr)
}

// decode converts count little-endian elements of dtype in b into a typed slice.
func decode(dtype dtypes.DType, b []byte, count int) any {
	le := binary.LittleEndian
	switch dtype {
	case dtypes.Float16:
		out := make([]float16.Float16, count)
		for i := range out {
			out[i] = float16.FromBits(le.Uint16(b[2*i:]))
		}
		return out
	case dtypes.Float32:
		out := make([]float32, count)
		for i := range out {
			out[i] = math.Float32frombits(le.Uint32(b[4*i:]))
		}
		return out
	case dtypes.Float64:
		out := make([]float64, count)
		for i := range out {
			out[i] = math.Float64frombits(le.Uint64(b[8*i:]))
		}
		return out
	case dtypes.Int8:
		out := make([]int8, count)
		for i := range out {
			out[i] = int8(b[i])
		}
		return out
	case dtypes.Int16:
		out := make([]int16, count)
		for i := range out {
			out[i] = int16(le.Uint16(b[2*i:]))
		}
		return out
	case dtypes.Int32:
		out := make([]int32, count)
		for i := range out {
			out[i] = int32(le.Uint32(b[4*i:]))
		}
		return out
	case dtypes.Int64:
		out := make([]int64, count)
		for i := range out {
			out[i] = int64(le.Uint64(b[8*i:]))
		}
		return out
	case dtypes.Uint8:
		return append(make([]uint8, 0, count), b[:count]...)
	case dtypes.Uint16:
		out := make([]uint16, count)
		for i := range out {
			out[i] = le.Uint16(b[2*i:])
		}
		return out
	case dtypes.Uint32:
		out := make([]uint32, count)
		for i := range out {
			out[i] = le.Uint32(b[4*i:])
		}
		return out
	case dtypes.Uint64:
		out := make([]uint64, count)
		for i := range out {
			out[i] = le.Uint64(b[8*i:])
		}
		return out
	case dtypes.Bool:
		out := make([]bool, count)
		for i := range out {
			out[i] = b[i] != 0
		}
		return out
	}
	panic(fmt.Sprintf("interop: decode of unsupported dtype %s", dtype)) // unreachable: parseDescr filters dtypes
}

// encode appends the little-endian bytes of data (a slice matching a supported dtype) to b.
func encode(b []byte, data any) []byte {
	le := binary.LittleEndian
	switch d := data.(type) {
	case []float16.Float16:
		for _, v := range d {
			b = le.AppendUint16(b, v.Bits())
		}
	case []float32:
		for _, v := range d {
			b = le.AppendUint32(b, math.Float32bits(v))
		}
	case []float64:
		for _, v := range d {
			b = le.AppendUint64(b, math.Float64bits(v))
		}
	case []int8:
		for _, v := range d {
			b = append(b, byte(v))
		}
	case []int16:
		for _, v := range d {
			b = le.AppendUint16(b, uint16(v))
		}
	case []int32:
		for _, v := range d {
			b = le.AppendUint32(b, uint32(v))
		}
	case []int64:
		for _, v := range d {
			b = le.AppendUint64(b, uint64(v))
		}
	case []uint8:
		b = append(b, d...)
	case []uint16:
		for _, v := range d {
			b = le.AppendUint16(b, v)
		}
	case []uint32:
		for _, v := range d {
			b = le.AppendUint32(b, v)
		}
	case []uint64:
		for _, v := range d {
			b = le.AppendUint64(b, v)
		}
	case []bool:
		for _, v := range d {
			if v {
				b = append(b, 1)
			} else {
				b = append(b, 0)
			}
		}
	default:
		panic(fmt.Sprintf("interop: encode of unsupported data %T", data)) // unreachable: Validate checks types
	}
	return b
}

// dataLen returns len(data) and whether data is a slice of the Go type of dtype.
func dataLen(dtype dtypes.DType, data any) (int, bool) {
	switch d := data.(type) {
	case []float16.Float16:
		return len(d), dtype == dtypes.Float16
	case []float32:
		return len(d), dtype == dtypes.Float32
	case []float64:
		return len(d), dtype == dtypes.Float64
	case []int8:
		return len(d), dtype == dtypes.Int8
	case []int16:
		return len(d), dtype == dtypes.Int16
	case []int32:
		return len(d), dtype == dtypes.Int32
	case []int64:
		return len(d), dtype == dtypes.Int64
	case []uint8:
		return len(d), dtype == dtypes.Uint8
	case []uint16:
		return len(d), dtype == dtypes.Uint16
	case []uint32:
		return len(d), dtype == dtypes.Uint32
	case []uint64:
		return len(d), dtype == dtypes.Uint64
	case []bool:
		return len(d), dtype == dtypes.Bool
	}
	return 0, false
}

// sliceAny returns data[start:end] for a supported slice type.
func sliceAny(data any, start, end int) any {
	switch d := data.(type) {
	case []float16.Float16:
		return d[start:end]
	case []float32:
		return d[start:end]
	case []float64:
		return d[start:end]
	case []int8:
		return d[start:end]
	case []int16:
		return d[start:end]
	case []int32:
		return d[start:end]
	case []int64:
		return d[start:end]
	case []uint8:
		return d[start:end]
	case []uint16:
		return d[start:end]
	case []uint32:
		return d[start:end]
	case []uint64:
		return d[start:end]
	case []bool:
		return d[start:end]
	}
	panic(fmt.Sprintf("interop: slice of unsupported data %T", data))
}
