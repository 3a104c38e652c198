// Converting between Arrays and GoMLX tensors.

package interop

import (
	"fmt"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/dtypes/bfloat16"
	"github.com/gomlx/compute/dtypes/float16"
	"github.com/gomlx/gomlx/core/tensors"
)

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
