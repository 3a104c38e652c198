// Package interop maps seqconv variables to and from the authors' PyTorch state_dict: key names and
// weight layouts.
//
// A variable's path maps onto a state_dict key by dropping the leading "/" and replacing "/" with ".":
// "/Stage1/0/LayerA/Filters/0/BottleneckLayer/LinearLayer/weight" is
// "Stage1.0.LayerA.Filters.0.BottleneckLayer.LinearLayer.weight". Conv weights are stored here as
// [kh, kw, in/groups, out] (HWIO, channels last) and in PyTorch as [out, in/groups, kh, kw] (OIHW); the
// classifier weight is [in, out] here and [out, in] in PyTorch. Everything else has the same layout.
// The SeqResNeXt family is the exception to the key mapping: the authors' SeqResNeXt.py keeps each SeqConv
// layer's units in two lists, so its keys come from ResNeXtKey (OptionsFor picks the mapping from a config).
//
// State dicts travel as NumPy files, read and written in pure Go: ReadNPY/WriteNPY for .npy (format
// versions 1.0 to 3.0, little-endian, C order) and ReadNPZ/WriteNPZ for .npz archives (numpy.savez and
// numpy.savez_compressed). In Python, a state_dict is saved with
//
//	numpy.savez(path, **{k: v.cpu().numpy() for k, v in model.state_dict().items()})
//
// and loaded back with model.load_state_dict({k: torch.from_numpy(v) for k, v in numpy.load(path).items()}).
//
// ImportState sets a store's model variables from such a state_dict, checking that every key is used,
// every variable assigned and every shape right; ExportState does the reverse, exactly. Variables that are
// not part of the model (optimizer state, global step, RNG state) are skipped; see ModelVariable.
//
// For deployment, WriteONNX writes a model with its weights as an ONNX file (input ONNXInput, NCHW images;
// output ONNXOutput, logits) that ONNX Runtime and other ONNX runtimes run without seqconv.
package interop

import (
	"fmt"
	"strings"
)

// TorchKey returns the state_dict key of the variable at path.
func TorchKey(path string) string {
	return strings.ReplaceAll(strings.TrimPrefix(path, "/"), "/", ".")
}

// VariablePath returns the variable path of a state_dict key (the inverse of TorchKey).
func VariablePath(key string) string {
	return "/" + strings.ReplaceAll(key, ".", "/")
}

// Layout describes how a variable's axes map onto its PyTorch tensor's axes.
type Layout int

const (
	// Same: identical layout (vectors, scalars).
	Same Layout = iota
	// ConvHWIO: ours [kh, kw, in, out], PyTorch [out, in, kh, kw].
	ConvHWIO
	// LinearIO: ours [in, out], PyTorch [out, in].
	LinearIO
)

// LayoutOf returns the layout of a variable with the given path and rank.
func LayoutOf(path string, rank int) Layout {
	switch {
	case rank == 4 && strings.HasSuffix(path, "/weight"):
		return ConvHWIO
	case rank == 2 && strings.HasSuffix(path, "/weight"):
		return LinearIO
	}
	return Same
}

// perm returns, for our layout, the permutation p such that torchDims[i] = ourDims[p[i]].
func (l Layout) perm() []int {
	switch l {
	case ConvHWIO:
		return []int{3, 2, 0, 1}
	case LinearIO:
		return []int{1, 0}
	}
	return nil
}

// TorchDims returns the PyTorch dimensions of a variable of layout l with our dimensions dims.
func (l Layout) TorchDims(dims []int) []int {
	p := l.perm()
	if p == nil {
		return append([]int(nil), dims...)
	}
	out := make([]int, len(p))
	for i, a := range p {
		out[i] = dims[a]
	}
	return out
}

// ToTorch rearranges flat data of our layout with dimensions dims into PyTorch's layout.
func ToTorch[T any](l Layout, dims []int, data []T) []T {
	return permute(l.perm(), dims, data)
}

// FromTorch rearranges flat data in PyTorch's layout into our layout with dimensions dims (ours).
func FromTorch[T any](l Layout, dims []int, data []T) []T {
	p := l.perm()
	if p == nil {
		return append([]T(nil), data...)
	}
	inv := make([]int, len(p))
	for i, a := range p {
		inv[a] = i
	}
	return permute(inv, l.TorchDims(dims), data)
}

// permute transposes row-major data of dimensions dims so that out dims are dims[p[0]], dims[p[1]], ...
func permute[T any](p []int, dims []int, data []T) []T {
	out := make([]T, len(data))
	if p == nil {
		copy(out, data)
		return out
	}
	if len(p) != len(dims) {
		panic(fmt.Sprintf("interop: permutation %v does not fit dims %v", p, dims))
	}
	rank := len(dims)
	strides := make([]int, rank)
	s := 1
	for i := rank - 1; i >= 0; i-- {
		strides[i] = s
		s *= dims[i]
	}
	outDims := make([]int, rank)
	for i, a := range p {
		outDims[i] = dims[a]
	}
	idx := make([]int, rank) // index in out
	for o := range out {
		src := 0
		for i, a := range p {
			src += idx[i] * strides[a]
		}
		out[o] = data[src]
		for i := rank - 1; i >= 0; i-- {
			idx[i]++
			if idx[i] < outDims[i] {
				break
			}
			idx[i] = 0
		}
	}
	return out
}
