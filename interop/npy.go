package interop

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/dtypes/float16"
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
