package interop

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/dtypes/bfloat16"
	"github.com/gomlx/compute/dtypes/float16"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/seqconv/seqconv/models"
)

// NonModelScopes are the top-level scopes (first path element) of store variables that are not part of a
// model's state_dict: the global step and the training loop's step, optimizer state (GoMLX's "optimizers"
// and "AdamOptimizer", this project's "SGDOptimizer"), metrics, accumulated gradients and learning-rate
// schedules.
var NonModelScopes = []string{
	"global_step", "train_last_global_step", "optimizers", "SGDOptimizer", "AdamOptimizer", "metrics",
	"acc_grads", "cosine_schedule",
}

// ModelVariable is the default filter of ImportState and ExportState: it reports whether the variable at path
// belongs to the model. The rule: a variable belongs to the model unless
//   - an element of its path starts with "#" (GoMLX's internal variables, such as the RNG state "/#rngState"),
//   - its first path element is one of NonModelScopes, or
//   - its first path element ends in "Optimizer" (the convention of optimizer state scopes).
//
// The models' own top-level scopes are the authors' module names ("Init", "Head", "Stage1", "Downsample1",
// "Blender", "Classifier", ...), none of which matches.
func ModelVariable(path string) bool {
	elems := strings.Split(strings.TrimPrefix(path, "/"), "/")
	for _, e := range elems {
		if strings.HasPrefix(e, "#") {
			return false
		}
	}
	top := elems[0]
	return !slices.Contains(NonModelScopes, top) && !strings.HasSuffix(top, "Optimizer")
}

// Options select the variables of a store that form the state_dict and name their keys.
type Options struct {
	// Filter reports whether the variable at path is part of the state_dict; nil means ModelVariable.
	Filter func(path string) bool
	// Key returns the state_dict key of the variable at path; nil means TorchKey. Use ResNeXtKey for the
	// SeqResNeXt family (OptionsFor picks it from a model config).
	Key func(path string) string
}

func (o Options) filter(path string) bool {
	if o.Filter == nil {
		return ModelVariable(path)
	}
	return o.Filter(path)
}

func (o Options) key(path string) string {
	if o.Key == nil {
		return TorchKey(path)
	}
	return o.Key(path)
}

// OptionsFor returns the Options matching the authors' module names for a model config: ResNeXtKey for
// the SeqResNeXt family (models.FamilyResNeXt), TorchKey otherwise, and ModelVariable as the filter.
func OptionsFor(c models.Config) Options {
	if c.Family == models.FamilyResNeXt {
		return Options{Key: ResNeXtKey}
	}
	return Options{}
}

// resNeXtFilter matches our filter sub-modules ".Filters.J.BottleneckLayer." and ".Filters.J.TransformationLayer.".
var resNeXtFilter = regexp.MustCompile(`(^|\.)Filters\.([0-9]+)\.(Bottleneck|Transformation)Layer\.`)

// ResNeXtKey returns the state_dict key of the variable at path in the authors' SeqResNeXt.py, whose SeqConv
// layers hold their filters' units in two lists instead of one list of filters: our
// "Stage1/0/LayerA/Filters/3/BottleneckLayer/LinearLayer/weight" is their
// "Stage1.0.LayerA.BottleneckLayers.3.LinearLayer.weight", and ".../Filters/3/TransformationLayer/..." is
// "...TransformationLayers.3...". Other paths map as with TorchKey.
func ResNeXtKey(path string) string {
	return resNeXtFilter.ReplaceAllString(TorchKey(path), "${1}${3}Layers.${2}.")
}

// StateError lists every problem found by ImportState (missing, extra and mis-shaped keys, wrong dtypes),
// one line each, sorted; each line starts with the state_dict key it is about.
type StateError struct {
	Problems []string
}

// Error implements error.
func (e *StateError) Error() string {
	if len(e.Problems) == 1 {
		return "interop: state dict: " + e.Problems[0]
	}
	return fmt.Sprintf("interop: state dict: %d problems:\n  %s", len(e.Problems), strings.Join(e.Problems, "\n  "))
}

// ImportState sets every model variable of store (ModelVariable) from the PyTorch state_dict arrays keyed by
// TorchKey(path); see ImportStateWith.
func ImportState(store *model.Store, arrays map[string]*Array) error {
	return ImportStateWith(store, arrays, Options{})
}

// ImportStateWith sets every variable of store selected by opts.Filter from arrays, a PyTorch state_dict
// keyed by opts.Key(path). Each array must have the variable's PyTorch shape
// (LayoutOf(path, rank).TorchDims(variable dims)); it is rearranged with FromTorch and converted to the
// variable's dtype: float variables take float arrays (float16, float32 or float64), integer variables
// (num_batches_tracked) take integer arrays. Every selected variable must be assigned and every key used:
// missing keys, extra keys, mis-shaped arrays and wrong dtypes are reported together in one *StateError,
// and then no variable is changed.
func ImportStateWith(store *model.Store, arrays map[string]*Array, opts Options) error {
	var problems []string
	used := make(map[string]string, len(arrays)) // key -> variable path
	type assignment struct {
		v *model.Variable
		t *tensors.Tensor
	}
	var todo []assignment
	for v := range store.IterVariables() {
		path := v.Path()
		if !opts.filter(path) {
			continue
		}
		key := opts.key(path)
		dims := v.Shape().Dimensions
		layout := LayoutOf(path, len(dims))
		want := layout.TorchDims(dims)
		if other, dup := used[key]; dup {
			problems = append(problems, fmt.Sprintf("%s: variables %s and %s map to the same key", key, other, path))
			continue
		}
		used[key] = path
		a, ok := arrays[key]
		if !ok || a == nil {
			problems = append(problems, fmt.Sprintf("%s: missing (variable %s, want %s %s)",
				key, path, dtypeName(v.DType()), shapeString(want)))
			continue
		}
		if err := a.Validate(); err != nil {
			problems = append(problems, fmt.Sprintf("%s: invalid array: %v", key, err))
			continue
		}
		if !slices.Equal(a.Shape, want) {
			problems = append(problems, fmt.Sprintf("%s: shape %s, want %s (variable %s, our shape %s)",
				key, shapeString(a.Shape), shapeString(want), path, shapeString(dims)))
			continue
		}
		t, err := toVariableTensor(a, v.DType(), layout, dims)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v (variable %s)", key, err, path))
			continue
		}
		todo = append(todo, assignment{v, t})
	}
	for key := range arrays {
		if _, ok := used[key]; !ok {
			problems = append(problems, fmt.Sprintf("%s: unexpected key, no model variable maps to it", key))
		}
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return &StateError{Problems: problems}
	}
	for _, as := range todo {
		if err := as.v.SetValue(as.t); err != nil {
			return fmt.Errorf("interop: setting %s: %w", as.v.Path(), err)
		}
	}
	return nil
}

// shapeString formats PyTorch-style dimensions like the statedict key lists: "16x3x3x3", or "scalar".
func shapeString(dims []int) string {
	if len(dims) == 0 {
		return "scalar"
	}
	s := make([]string, len(dims))
	for i, d := range dims {
		s[i] = fmt.Sprint(d)
	}
	return strings.Join(s, "x")
}

// toVariableTensor converts a (PyTorch layout, already shape-checked) to a tensor of dtype in our layout.
func toVariableTensor(a *Array, dtype dtypes.DType, layout Layout, dims []int) (*tensors.Tensor, error) {
	src, _ := npyTypeOf(a.DType)
	switch {
	case dtype.IsFloat():
		if src.kind != 'f' {
			return nil, fmt.Errorf("dtype %s, want a float array for a variable of dtype %s", dtypeName(a.DType), dtypeName(dtype))
		}
	case dtype.IsInt():
		if src.kind != 'i' && src.kind != 'u' {
			return nil, fmt.Errorf("dtype %s, want an integer array for a variable of dtype %s", dtypeName(a.DType), dtypeName(dtype))
		}
	default:
		return nil, fmt.Errorf("variables of dtype %s are not supported", dtypeName(dtype))
	}
	switch dtype {
	case dtypes.Float32:
		return tensors.FromFlatDataAndDimensions(FromTorch(layout, dims, convertFloat[float32](a.Data)), dims...), nil
	case dtypes.Float64:
		return tensors.FromFlatDataAndDimensions(FromTorch(layout, dims, convertFloat[float64](a.Data)), dims...), nil
	case dtypes.Float16:
		f := convertFloat[float64](a.Data)
		h := make([]float16.Float16, len(f))
		for i, x := range f {
			h[i] = float16.FromFloat64(x)
		}
		return tensors.FromFlatDataAndDimensions(FromTorch(layout, dims, h), dims...), nil
	case dtypes.BFloat16:
		f := convertFloat[float32](a.Data)
		h := make([]bfloat16.BFloat16, len(f))
		for i, x := range f {
			h[i] = bfloat16.FromFloat32(x)
		}
		return tensors.FromFlatDataAndDimensions(FromTorch(layout, dims, h), dims...), nil
	case dtypes.Int64:
		return intTensor[int64](a, layout, dims)
	case dtypes.Int32:
		return intTensor[int32](a, layout, dims)
	case dtypes.Int16:
		return intTensor[int16](a, layout, dims)
	case dtypes.Int8:
		return intTensor[int8](a, layout, dims)
	case dtypes.Uint64:
		return intTensor[uint64](a, layout, dims)
	case dtypes.Uint32:
		return intTensor[uint32](a, layout, dims)
	case dtypes.Uint16:
		return intTensor[uint16](a, layout, dims)
	case dtypes.Uint8:
		return intTensor[uint8](a, layout, dims)
	}
	return nil, fmt.Errorf("variables of dtype %s are not supported", dtype)
}

// dtypeName is the lower-case (numpy-like) name of dtype: "float32", "int64".
func dtypeName(dtype dtypes.DType) string { return strings.ToLower(dtype.String()) }

// convertFloat converts float array data ([]float16.Float16, []float32 or []float64) to []T.
func convertFloat[T float32 | float64](data any) []T {
	switch d := data.(type) {
	case []float32:
		return convertSlice[T](d)
	case []float64:
		return convertSlice[T](d)
	case []float16.Float16:
		out := make([]T, len(d))
		for i, x := range d {
			out[i] = T(x.Float32())
		}
		return out
	}
	panic(fmt.Sprintf("interop: convertFloat of %T", data)) // unreachable: callers check the kind
}

type integer interface {
	int8 | int16 | int32 | int64 | uint8 | uint16 | uint32 | uint64
}

// intTensor converts integer array data to a tensor of T, failing if a value does not fit T.
func intTensor[T integer](a *Array, layout Layout, dims []int) (*tensors.Tensor, error) {
	var out []T
	var ok bool
	switch d := a.Data.(type) {
	case []int8:
		out, ok = convertInts[T](d)
	case []int16:
		out, ok = convertInts[T](d)
	case []int32:
		out, ok = convertInts[T](d)
	case []int64:
		out, ok = convertInts[T](d)
	case []uint8:
		out, ok = convertInts[T](d)
	case []uint16:
		out, ok = convertInts[T](d)
	case []uint32:
		out, ok = convertInts[T](d)
	case []uint64:
		out, ok = convertInts[T](d)
	default:
		return nil, fmt.Errorf("dtype %s is not an integer type", a.DType)
	}
	if !ok {
		return nil, fmt.Errorf("%s values out of the range of %s", dtypeName(a.DType), dtypeName(dtypes.FromGenericsType[T]()))
	}
	return tensors.FromFlatDataAndDimensions(FromTorch(layout, dims, out), dims...), nil
}

func convertSlice[T, S float32 | float64](s []S) []T {
	out := make([]T, len(s))
	for i, x := range s {
		out[i] = T(x)
	}
	return out
}

// convertInts converts integers, reporting false if a value changes (overflow or sign).
func convertInts[T, S integer](s []S) ([]T, bool) {
	out := make([]T, len(s))
	for i, x := range s {
		y := T(x)
		if S(y) != x || (x < 0) != (y < 0) {
			return nil, false
		}
		out[i] = y
	}
	return out, true
}

// ExportState returns the model variables of store (ModelVariable) as a PyTorch state_dict keyed by
// TorchKey; see ExportStateWith.
func ExportState(store *model.Store) (map[string]*Array, []string, error) {
	return ExportStateWith(store, Options{})
}

// ExportStateWith returns the variables of store selected by opts.Filter as a PyTorch state_dict: arrays
// keyed by opts.Key(path), in PyTorch's layout (ToTorch) and the variable's dtype (float32 variables give
// float32 arrays, the int64 num_batches_tracked int64 scalars; bfloat16, which .npy lacks, gives float32),
// and the keys in state_dict order (see ModuleOrder): the store's variable order, which follows the model's
// construction order, with each module's entries grouped together as PyTorch lists them.
// ImportStateWith of the result, with the same opts, restores the variables exactly.
func ExportStateWith(store *model.Store, opts Options) (map[string]*Array, []string, error) {
	arrays := map[string]*Array{}
	var keys []string
	for v := range store.IterVariables() {
		path := v.Path()
		if !opts.filter(path) {
			continue
		}
		key := opts.key(path)
		if _, dup := arrays[key]; dup {
			return nil, nil, fmt.Errorf("interop: export: variable %s maps to the key %s of another variable", path, key)
		}
		t, err := v.Value()
		if err != nil {
			return nil, nil, fmt.Errorf("interop: export: variable %s: %w", path, err)
		}
		a, err := ArrayFromTensor(t)
		if err != nil {
			return nil, nil, fmt.Errorf("interop: export: variable %s: %w", path, err)
		}
		layout := LayoutOf(path, len(a.Shape))
		a.Data = toTorchAny(layout, a.Shape, a.Data)
		a.Shape = layout.TorchDims(a.Shape)
		arrays[key] = a
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, nil, errors.New("interop: export: the store has no model variables")
	}
	return arrays, ModuleOrder(keys), nil
}

// toTorchAny applies ToTorch to any supported flat data slice.
func toTorchAny(l Layout, dims []int, data any) any {
	switch d := data.(type) {
	case []float16.Float16:
		return ToTorch(l, dims, d)
	case []float32:
		return ToTorch(l, dims, d)
	case []float64:
		return ToTorch(l, dims, d)
	case []int8:
		return ToTorch(l, dims, d)
	case []int16:
		return ToTorch(l, dims, d)
	case []int32:
		return ToTorch(l, dims, d)
	case []int64:
		return ToTorch(l, dims, d)
	case []uint8:
		return ToTorch(l, dims, d)
	case []uint16:
		return ToTorch(l, dims, d)
	case []uint32:
		return ToTorch(l, dims, d)
	case []uint64:
		return ToTorch(l, dims, d)
	case []bool:
		return ToTorch(l, dims, d)
	}
	panic(fmt.Sprintf("interop: unsupported data %T", data))
}

// LoadStateNPZ imports a PyTorch state_dict saved as .npz (see ReadNPZ) into the variables of store (see
// ImportStateWith).
func LoadStateNPZ(store *model.Store, path string, opts Options) error {
	arrays, _, err := ReadNPZ(path)
	if err != nil {
		return err
	}
	if err := ImportStateWith(store, arrays, opts); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// SaveStateNPZ exports the variables of store (see ExportStateWith) as a PyTorch state_dict .npz at path,
// written atomically (see WriteNPZ); in Python, numpy.load(path) then gives arrays to load with
// model.load_state_dict({k: torch.from_numpy(v) for k, v in npz.items()}).
func SaveStateNPZ(store *model.Store, path string, opts Options) error {
	arrays, keys, err := ExportStateWith(store, opts)
	if err != nil {
		return err
	}
	return WriteNPZ(path, arrays, keys)
}

// TorchShapes returns the state_dict keys of the variables of store selected by opts, in the order
// ExportStateWith gives them, and the PyTorch dimensions of each: what ExportStateWith would export, without
// needing the variables' values (so it also works on a store whose model graph was only built).
func TorchShapes(store *model.Store, opts Options) (keys []string, dims map[string][]int) {
	dims = map[string][]int{}
	for v := range store.IterVariables() {
		path := v.Path()
		if !opts.filter(path) {
			continue
		}
		d := v.Shape().Dimensions
		key := opts.key(path)
		keys = append(keys, key)
		dims[key] = LayoutOf(path, len(d)).TorchDims(d)
	}
	return ModuleOrder(keys), dims
}

// ModuleOrder returns dotted state_dict keys, given in creation order, in PyTorch's state_dict order: PyTorch lists a module's entries contiguously, its own parameters and buffers first, then each child module
// in registration order. ModuleOrder keeps the first-appearance order of every module and entry but groups
// each module's entries together (a depth-first walk of the key tree). Keys already so grouped keep their
// order; SeqResNeXt's, whose filters put their units in two separate lists, get the authors' order.
func ModuleOrder(keys []string) []string {
	type node struct {
		children map[string]*node
		order    []string
		leaf     bool
	}
	newNode := func() *node { return &node{children: map[string]*node{}} }
	root := newNode()
	for _, k := range keys {
		n := root
		for _, part := range strings.Split(k, ".") {
			c, ok := n.children[part]
			if !ok {
				c = newNode()
				n.children[part] = c
				n.order = append(n.order, part)
			}
			n = c
		}
		n.leaf = true
	}
	out := make([]string, 0, len(keys))
	var walk func(n *node, prefix string)
	walk = func(n *node, prefix string) {
		if n.leaf {
			out = append(out, prefix)
		}
		for _, part := range n.order {
			p := part
			if prefix != "" {
				p = prefix + "." + part
			}
			walk(n.children[part], p)
		}
	}
	walk(root, "")
	return out
}
