package interop

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/dtypes/bfloat16"
	"github.com/gomlx/compute/dtypes/float16"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/seqconv/seqconv/internal/atomicfile"
)

// Array is an n-dimensional array as stored in a NumPy .npy file: C (row-major) order, little-endian.
//
// Data holds the flat values; its Go type follows DType:
//
//	dtypes.Float16 []float16.Float16 ('<f2')    dtypes.Int8  []int8  ('|i1')    dtypes.Uint8  []uint8  ('|u1')
//	dtypes.Float32 []float32         ('<f4')    dtypes.Int16 []int16 ('<i2')    dtypes.Uint16 []uint16 ('<u2')
//	dtypes.Float64 []float64         ('<f8')    dtypes.Int32 []int32 ('<i4')    dtypes.Uint32 []uint32 ('<u4')
//	dtypes.Bool    []bool            ('|b1')    dtypes.Int64 []int64 ('<i8')    dtypes.Uint64 []uint64 ('<u8')
//
// Shape is empty (nil or []int{}) for a scalar; len(Data) is always the product of Shape.
type Array struct {
	DType dtypes.DType
	Shape []int
	Data  any
}

// NewArray returns an Array of the given flat data and shape (no shape: a scalar). It does not copy data.
// It returns an error if T has no .npy dtype or len(data) is not the product of shape.
func NewArray[T float16.Float16 | float32 | float64 | bool | int8 | int16 | int32 | int64 | uint8 | uint16 | uint32 | uint64](
	data []T, shape ...int) (*Array, error) {
	a := &Array{DType: dtypes.FromGenericsType[T](), Shape: append([]int{}, shape...), Data: data}
	if err := a.Validate(); err != nil {
		return nil, err
	}
	return a, nil
}

// Size returns the number of elements of a's shape (1 for a scalar). It does not check for overflow; see Validate.
func (a *Array) Size() int {
	n := 1
	for _, d := range a.Shape {
		n *= d
	}
	return n
}

// String returns a short description such as "float32[16 3 3 3]".
func (a *Array) String() string {
	if a == nil {
		return "<nil>"
	}
	return strings.ToLower(a.DType.String()) + dimsString(a.Shape)
}

// dimsString formats dims as "[16 3 3 3]" ("[]" for a scalar).
func dimsString(dims []int) string {
	return fmt.Sprint(append([]int{}, dims...))
}

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

// npyMagic starts every .npy file.
const npyMagic = "\x93NUMPY"

// maxHeaderLen bounds the header length accepted by ReadNPY (numpy itself refuses headers over 10000 bytes by
// default).
const maxHeaderLen = 1 << 20

// readChunk is the largest buffer growth step of ReadNPY: the data buffer never exceeds what the input actually
// held by more than this, whatever the header claims.
const readChunk = 1 << 22

// ReadNPY reads one array in NumPy .npy format (versions 1.0, 2.0 and 3.0) from r. It reads exactly the
// header and the data, nothing after them. Supported are little-endian numeric and bool dtypes in C order
// (see Array); big-endian data, fortran_order=True, structured and object dtypes are errors. Corrupt input
// (bad magic or header, truncated data, a shape larger than the data) gives an error, never a panic, and
// the data buffer only grows as bytes actually arrive.
func ReadNPY(r io.Reader) (*Array, error) {
	var pre [10]byte
	if n, err := io.ReadFull(r, pre[:8]); err != nil {
		if n == 0 && err == io.EOF {
			return nil, fmt.Errorf("npy: empty input, want the magic %q", npyMagic)
		}
		return nil, fmt.Errorf("npy: truncated preamble (%d of 8 bytes): %w", n, err)
	}
	if string(pre[:6]) != npyMagic {
		return nil, fmt.Errorf("npy: bad magic %q, want %q", pre[:6], npyMagic)
	}
	major, minor := pre[6], pre[7]
	var headerLen int
	switch major {
	case 1:
		if _, err := io.ReadFull(r, pre[8:10]); err != nil {
			return nil, fmt.Errorf("npy: truncated header length: %w", err)
		}
		headerLen = int(binary.LittleEndian.Uint16(pre[8:10]))
	case 2, 3:
		var l [4]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return nil, fmt.Errorf("npy: truncated header length: %w", err)
		}
		n := binary.LittleEndian.Uint32(l[:])
		if n > maxHeaderLen {
			return nil, fmt.Errorf("npy: header length %d exceeds the limit of %d bytes", n, maxHeaderLen)
		}
		headerLen = int(n)
	default:
		return nil, fmt.Errorf("npy: unsupported format version %d.%d, want 1.0, 2.0 or 3.0", major, minor)
	}
	if minor != 0 {
		return nil, fmt.Errorf("npy: unsupported format version %d.%d, want 1.0, 2.0 or 3.0", major, minor)
	}
	header := make([]byte, headerLen)
	if n, err := io.ReadFull(r, header); err != nil {
		return nil, fmt.Errorf("npy: truncated header (%d of %d bytes): %w", n, headerLen, err)
	}
	h, err := parseHeader(string(header))
	if err != nil {
		return nil, fmt.Errorf("npy: header %q: %w", strings.TrimSpace(string(header)), err)
	}
	if h.fortranOrder {
		return nil, fmt.Errorf("npy: fortran_order=True is not supported, want C order (fortran_order=False)")
	}
	t, err := parseDescr(h.descr)
	if err != nil {
		return nil, fmt.Errorf("npy: %w", err)
	}
	count, err := checkedSize(h.shape)
	if err != nil {
		return nil, fmt.Errorf("npy: shape %v: %w", h.shape, err)
	}
	if count > math.MaxInt/t.size {
		return nil, fmt.Errorf("npy: shape %v of %s overflows the addressable size", h.shape, h.descr)
	}
	nbytes := count * t.size
	data, err := readBounded(r, nbytes)
	if err != nil {
		return nil, fmt.Errorf("npy: %s%s data: want %d bytes, got %d: truncated", h.descr, dimsString(h.shape),
			nbytes, len(data))
	}
	a := &Array{DType: t.dtype, Shape: h.shape, Data: decode(t.dtype, data, count)}
	return a, nil
}

// readBounded reads exactly n bytes from r, growing its buffer at most readChunk bytes ahead of what arrived.
// On a short read it returns what it got and a non-nil error.
func readBounded(r io.Reader, n int) ([]byte, error) {
	buf := make([]byte, 0, min(n, readChunk))
	for len(buf) < n {
		if len(buf) == cap(buf) {
			grow := min(n-len(buf), max(readChunk, len(buf)/4))
			nb := make([]byte, len(buf), len(buf)+grow)
			copy(nb, buf)
			buf = nb
		}
		m, err := io.ReadFull(r, buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if err != nil {
			return buf, err
		}
	}
	return buf, nil
}

// checkedSize returns the product of dims, or an error on negative dims or int overflow.
func checkedSize(dims []int) (int, error) {
	n := 1
	for _, d := range dims {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension %d", d)
		}
		if d != 0 && n > math.MaxInt/d {
			return 0, errors.New("number of elements overflows int")
		}
		n *= d
	}
	return n, nil
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

// Validate checks that a's dtype has a .npy type, Data is a slice of its Go type and len(Data) equals the
// product of Shape.
func (a *Array) Validate() error {
	if a == nil {
		return errors.New("nil array")
	}
	if _, ok := npyTypeOf(a.DType); !ok {
		return fmt.Errorf("dtype %s has no .npy type", a.DType)
	}
	n, ok := dataLen(a.DType, a.Data)
	if !ok {
		return fmt.Errorf("data of type %T does not match dtype %s", a.Data, a.DType)
	}
	size, err := checkedSize(a.Shape)
	if err != nil {
		return fmt.Errorf("shape %v: %w", a.Shape, err)
	}
	if n != size {
		return fmt.Errorf("shape %v needs %d elements, data has %d", a.Shape, size, n)
	}
	return nil
}

// npyHeader returns the complete .npy preamble and header of a (magic, version, length, dict padded with spaces
// and a newline so that the data starts at a multiple of 64 bytes, as numpy writes it). It uses version 1.0
// unless the header needs more than 65535 bytes.
func npyHeader(a *Array) []byte {
	t, _ := npyTypeOf(a.DType)
	var shape strings.Builder
	shape.WriteByte('(')
	for i, d := range a.Shape {
		if i > 0 {
			shape.WriteString(", ")
		}
		shape.WriteString(strconv.Itoa(d))
	}
	if len(a.Shape) == 1 {
		shape.WriteByte(',')
	}
	shape.WriteByte(')')
	dict := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': %s, }", t.descr(), shape.String())
	const align = 64
	for _, v := range []struct {
		major byte
		lenSz int
	}{{1, 2}, {2, 4}} {
		pre := len(npyMagic) + 2 + v.lenSz
		total := pre + len(dict) + 1
		padded := (total + align - 1) / align * align
		hlen := padded - pre
		if v.lenSz == 2 && hlen > math.MaxUint16 {
			continue
		}
		b := make([]byte, 0, padded)
		b = append(b, npyMagic...)
		b = append(b, v.major, 0)
		if v.lenSz == 2 {
			b = binary.LittleEndian.AppendUint16(b, uint16(hlen))
		} else {
			b = binary.LittleEndian.AppendUint32(b, uint32(hlen))
		}
		b = append(b, dict...)
		for len(b) < padded-1 {
			b = append(b, ' ')
		}
		return append(b, '\n')
	}
	panic("unreachable")
}

// WriteNPY writes a to w in NumPy .npy format (version 1.0, or 2.0 for headers over 64 KiB), as numpy.save
// does: little-endian, C order, header aligned to 64 bytes.
func WriteNPY(w io.Writer, a *Array) error {
	if err := a.Validate(); err != nil {
		return fmt.Errorf("npy: %w", err)
	}
	if _, err := w.Write(npyHeader(a)); err != nil {
		return fmt.Errorf("npy: writing header: %w", err)
	}
	// Encode in bounded chunks to avoid doubling the memory of large arrays.
	n, _ := dataLen(a.DType, a.Data)
	t, _ := npyTypeOf(a.DType)
	step := max(1, readChunk/t.size)
	buf := make([]byte, 0, min(n, step)*t.size)
	for start := 0; start < n; start += step {
		end := min(n, start+step)
		buf = encode(buf[:0], sliceAny(a.Data, start, end))
		if _, err := w.Write(buf); err != nil {
			return fmt.Errorf("npy: writing data: %w", err)
		}
	}
	return nil
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

// ReadNPYFile reads a .npy file (see ReadNPY), which must end with the array's data: trailing bytes are an
// error (the file is not what its header describes). Errors name the file.
func ReadNPYFile(path string) (*Array, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<16)
	a, err := ReadNPY(br)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	n, err := io.Copy(io.Discard, io.LimitReader(br, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("%s: after the array data: %w", path, err)
	}
	if n > 0 {
		more := ""
		if n == 1<<20 {
			more = " or more"
		}
		return nil, fmt.Errorf("%s: %d%s unexpected bytes after the array data of %s", path, n, more, a)
	}
	return a, nil
}

// FirstNonFinite returns the flat index and value of the first NaN or infinite element of a floating-point
// array, with ok true; ok is false when every element is finite (and for integer and bool arrays).
func FirstNonFinite(a *Array) (index int, value float64, ok bool) {
	check := func(i int, x float64) bool {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			index, value, ok = i, x, true
		}
		return ok
	}
	switch d := a.Data.(type) {
	case []float32:
		for i, x := range d {
			if check(i, float64(x)) {
				break
			}
		}
	case []float64:
		for i, x := range d {
			if check(i, x) {
				break
			}
		}
	case []float16.Float16:
		for i, x := range d {
			if check(i, float64(x.Float32())) {
				break
			}
		}
	}
	return index, value, ok
}

// Position returns the multi-dimensional index, e.g. [2 0 5 7], of a flat index into an array of the given shape.
func Position(shape []int, index int) []int {
	pos := make([]int, len(shape))
	for i := len(shape) - 1; i >= 0; i-- {
		if shape[i] > 0 {
			pos[i] = index % shape[i]
			index /= shape[i]
		}
	}
	return pos
}

// WriteNPYFile writes a to a .npy file atomically (see WriteNPY and WriteNPZ).
func WriteNPYFile(path string, a *Array) error {
	return atomicfile.Write(path, func(w io.Writer) error { return WriteNPY(w, a) })
}

// header is the parsed header dict of a .npy file.
type header struct {
	descr        string
	fortranOrder bool
	shape        []int
}

// parseHeader parses the Python dict literal of a .npy header: exactly the keys 'descr' (a string),
// 'fortran_order' (True/False) and 'shape' (a tuple of non-negative ints), followed by optional whitespace.
func parseHeader(s string) (header, error) {
	p := &pyParser{s: s}
	var h header
	seen := map[string]bool{}
	p.skipSpace()
	if !p.consume('{') {
		return h, errors.New("want a dict starting with '{'")
	}
	for {
		p.skipSpace()
		if p.consume('}') {
			break
		}
		key, err := p.str()
		if err != nil {
			return h, fmt.Errorf("dict key: %w", err)
		}
		if seen[key] {
			return h, fmt.Errorf("duplicate key %q", key)
		}
		seen[key] = true
		p.skipSpace()
		if !p.consume(':') {
			return h, fmt.Errorf("want ':' after key %q", key)
		}
		p.skipSpace()
		switch key {
		case "descr":
			if p.peek() != '\'' && p.peek() != '"' {
				return h, errors.New("'descr': structured or non-string dtypes are not supported, want a string such as '<f4'")
			}
			if h.descr, err = p.str(); err != nil {
				return h, fmt.Errorf("'descr': %w", err)
			}
		case "fortran_order":
			switch {
			case p.consumeWord("True"):
				h.fortranOrder = true
			case p.consumeWord("False"):
				h.fortranOrder = false
			default:
				return h, errors.New("'fortran_order': want True or False")
			}
		case "shape":
			if h.shape, err = p.tuple(); err != nil {
				return h, fmt.Errorf("'shape': %w", err)
			}
		default:
			return h, fmt.Errorf("unexpected key %q, want only 'descr', 'fortran_order' and 'shape'", key)
		}
		p.skipSpace()
		if p.consume('}') {
			break
		}
		if !p.consume(',') {
			return h, fmt.Errorf("want ',' or '}' after the value of %q", key)
		}
	}
	p.skipSpace()
	if p.i != len(p.s) {
		return h, fmt.Errorf("unexpected text %q after the dict", p.s[p.i:])
	}
	for _, k := range []string{"descr", "fortran_order", "shape"} {
		if !seen[k] {
			return h, fmt.Errorf("missing key '%s'", k)
		}
	}
	return h, nil
}

// pyParser scans the small subset of Python literals used in .npy headers.
type pyParser struct {
	s string
	i int
}

func (p *pyParser) peek() byte {
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

func (p *pyParser) skipSpace() {
	for p.i < len(p.s) && strings.IndexByte(" \t\r\n\x00", p.s[p.i]) >= 0 {
		p.i++
	}
}

func (p *pyParser) consume(c byte) bool {
	if p.peek() == c {
		p.i++
		return true
	}
	return false
}

func (p *pyParser) consumeWord(w string) bool {
	if strings.HasPrefix(p.s[p.i:], w) {
		p.i += len(w)
		return true
	}
	return false
}

// str parses a quoted string without escapes.
func (p *pyParser) str() (string, error) {
	q := p.peek()
	if q != '\'' && q != '"' {
		return "", errors.New("want a quoted string")
	}
	end := strings.IndexByte(p.s[p.i+1:], q)
	if end < 0 {
		return "", errors.New("unterminated string")
	}
	v := p.s[p.i+1 : p.i+1+end]
	if strings.IndexByte(v, '\\') >= 0 {
		return "", errors.New("escapes in strings are not supported")
	}
	p.i += end + 2
	return v, nil
}

// tuple parses "()", "(3,)", "(3, 4)" or "(3, 4,)"; Python 2 "L" suffixes are accepted.
func (p *pyParser) tuple() ([]int, error) {
	if !p.consume('(') {
		return nil, errors.New("want a tuple")
	}
	dims := []int{}
	for {
		p.skipSpace()
		if p.consume(')') {
			return dims, nil
		}
		start := p.i
		for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
			p.i++
		}
		if start == p.i {
			return nil, fmt.Errorf("want a non-negative integer at %q", truncate(p.s[start:], 16))
		}
		d, err := strconv.Atoi(p.s[start:p.i])
		if err != nil {
			return nil, fmt.Errorf("dimension %s: %w", p.s[start:p.i], err)
		}
		p.consume('L')
		dims = append(dims, d)
		p.skipSpace()
		if p.consume(')') {
			return dims, nil
		}
		if !p.consume(',') {
			return nil, errors.New("want ',' or ')' in the tuple")
		}
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// Tensor returns a GoMLX tensor holding a copy of a's data with a's shape.
func (a *Array) Tensor() (*tensors.Tensor, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	switch d := a.Data.(type) {
	case []float16.Float16:
		return tensors.FromFlatDataAndDimensions(d, a.Shape...), nil
	case []float32:
		return tensors.FromFlatDataAndDimensions(d, a.Shape...), nil
	case []float64:
		return tensors.FromFlatDataAndDimensions(d, a.Shape...), nil
	case []int8:
		return tensors.FromFlatDataAndDimensions(d, a.Shape...), nil
	case []int16:
		return tensors.FromFlatDataAndDimensions(d, a.Shape...), nil
	case []int32:
		return tensors.FromFlatDataAndDimensions(d, a.Shape...), nil
	case []int64:
		return tensors.FromFlatDataAndDimensions(d, a.Shape...), nil
	case []uint8:
		return tensors.FromFlatDataAndDimensions(d, a.Shape...), nil
	case []uint16:
		return tensors.FromFlatDataAndDimensions(d, a.Shape...), nil
	case []uint32:
		return tensors.FromFlatDataAndDimensions(d, a.Shape...), nil
	case []uint64:
		return tensors.FromFlatDataAndDimensions(d, a.Shape...), nil
	case []bool:
		return tensors.FromFlatDataAndDimensions(d, a.Shape...), nil
	}
	return nil, fmt.Errorf("unsupported data %T", a.Data)
}

// ArrayFromTensor returns an Array holding a copy of t's data and shape. BFloat16 tensors, which have no .npy
// type, are converted to float32; other dtypes without a .npy type are an error.
func ArrayFromTensor(t *tensors.Tensor) (*Array, error) {
	dims := append([]int{}, t.Shape().Dimensions...)
	var data any
	var err error
	switch t.DType() {
	case dtypes.BFloat16:
		var bf []bfloat16.BFloat16
		if bf, err = tensors.CopyFlatData[bfloat16.BFloat16](t); err == nil {
			f := make([]float32, len(bf))
			for i, v := range bf {
				f[i] = v.Float32()
			}
			data = f
		}
	case dtypes.Float16:
		data, err = tensors.CopyFlatData[float16.Float16](t)
	case dtypes.Float32:
		data, err = tensors.CopyFlatData[float32](t)
	case dtypes.Float64:
		data, err = tensors.CopyFlatData[float64](t)
	case dtypes.Int8:
		data, err = tensors.CopyFlatData[int8](t)
	case dtypes.Int16:
		data, err = tensors.CopyFlatData[int16](t)
	case dtypes.Int32:
		data, err = tensors.CopyFlatData[int32](t)
	case dtypes.Int64:
		data, err = tensors.CopyFlatData[int64](t)
	case dtypes.Uint8:
		data, err = tensors.CopyFlatData[uint8](t)
	case dtypes.Uint16:
		data, err = tensors.CopyFlatData[uint16](t)
	case dtypes.Uint32:
		data, err = tensors.CopyFlatData[uint32](t)
	case dtypes.Uint64:
		data, err = tensors.CopyFlatData[uint64](t)
	case dtypes.Bool:
		data, err = tensors.CopyFlatData[bool](t)
	default:
		return nil, fmt.Errorf("tensor dtype %s has no .npy type", t.DType())
	}
	if err != nil {
		return nil, err
	}
	dtype := t.DType()
	if dtype == dtypes.BFloat16 {
		dtype = dtypes.Float32
	}
	return &Array{DType: dtype, Shape: dims, Data: data}, nil
}
