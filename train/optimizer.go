// Package train holds the optimizer, learning-rate schedules and training loop of seqconv.
package train

import (
	"errors"
	"fmt"
	"math"
	"path"
	"reflect"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/model/initializer"
	"github.com/gomlx/gomlx/ml/train/optimizer"
	"github.com/gomlx/gomlx/support/exceptions"
)

// SGDScope is the top-level scope under which SGDOptimizer stores its per-variable state
// (the momentum buffers). The buffer of a trainable variable "<scope>/<name>" is stored
// at "/SGDOptimizer<scope>/<name>_momentum".
const SGDScope = "SGDOptimizer"

// MomentumSuffix is appended to a trainable variable's name to name its momentum buffer.
const MomentumSuffix = "_momentum"

// LearningRatePath is the absolute path of the learning-rate variable in a model.Store.
// It is the path used by GoMLX's optimizers (optimizer.Scope + optimizer.ParamLearningRate)
// when created from the root scope, and the variable that GoMLX's train.NewTrainer deletes.
var LearningRatePath = path.Join("/", optimizer.Scope, optimizer.ParamLearningRate)

// DefaultLearningRateDType is the dtype used by SetLearningRate when the learning-rate
// variable does not exist yet. It matches the usual dtype of a GoMLX loss; the SGD
// optimizer casts the learning rate to each variable's dtype anyway.
var DefaultLearningRateDType = dtypes.Float32

// SGDConfig configures an SGD optimizer. Create it with SGD, set options with its
// chainable methods, and finish with Done (or Build).
type SGDConfig struct {
	lr          float64
	lrSet       bool
	momentum    float64
	nesterov    bool
	weightDecay float64
	filter      func(v *model.Variable) bool
}

// SGD returns a configuration for a stochastic gradient descent optimizer with the exact
// semantics of PyTorch's torch.optim.SGD with dampening=0:
//
//	g = grad + weight_decay*p          (only for variables accepted by the weight-decay filter)
//	if momentum != 0:
//	    buf = momentum*buf + g         (buf starts at zero)
//	    g = g + momentum*buf  if nesterov, else  g = buf
//	p = p - lr*g
//
// Defaults: momentum 0, no Nesterov, no weight decay, weight decay (when enabled) applied
// to every trainable variable, and learning rate taken from the store hyperparameter
// optimizer.ParamLearningRate ("learning_rate") or optimizer.SGDDefaultLearningRate (0.1)
// unless set with SGDConfig.LearningRate.
//
// Unlike GoMLX's optimizer.StochasticGradientDescent there is no implicit 1/sqrt(step) decay:
// the learning rate is the value of the learning-rate variable (see SetLearningRate),
// which the host changes following a Schedule.
func SGD() *SGDConfig {
	return &SGDConfig{}
}

// LearningRate sets the initial learning rate: the value the learning-rate variable
// is created with when it does not exist at graph-building time. It must be >= 0.
func (c *SGDConfig) LearningRate(lr float64) *SGDConfig {
	c.lr = lr
	c.lrSet = true
	return c
}

// Momentum sets the momentum factor (PyTorch's momentum). 0 (the default) disables momentum
// and no momentum buffers are created.
func (c *SGDConfig) Momentum(momentum float64) *SGDConfig {
	c.momentum = momentum
	return c
}

// Nesterov enables Nesterov momentum. It requires a momentum > 0.
func (c *SGDConfig) Nesterov(nesterov bool) *SGDConfig {
	c.nesterov = nesterov
	return c
}

// WeightDecay sets the L2 penalty (PyTorch's weight_decay), added to the gradient as
// weight_decay*p before momentum. 0 (the default) disables it.
func (c *SGDConfig) WeightDecay(weightDecay float64) *SGDConfig {
	c.weightDecay = weightDecay
	return c
}

// WeightDecayFilter sets which variables get weight decay: only those for which
// filter returns true. nil (the default) means all trainable variables.
// See NoDecayForBNAndBias for the usual "no decay on batch-norm and biases" choice.
func (c *SGDConfig) WeightDecayFilter(filter func(v *model.Variable) bool) *SGDConfig {
	c.filter = filter
	return c
}

// Build validates the configuration and returns the optimizer.
// The configuration is copied: later changes to c don't affect the returned optimizer.
func (c *SGDConfig) Build() (*SGDOptimizer, error) {
	if c.lrSet && (c.lr < 0 || math.IsNaN(c.lr) || math.IsInf(c.lr, 0)) {
		return nil, fmt.Errorf("sgd: invalid learning rate %g, expected a finite value >= 0", c.lr)
	}
	if c.momentum < 0 || math.IsNaN(c.momentum) || math.IsInf(c.momentum, 0) {
		return nil, fmt.Errorf("sgd: invalid momentum %g, expected a finite value >= 0", c.momentum)
	}
	if c.weightDecay < 0 || math.IsNaN(c.weightDecay) || math.IsInf(c.weightDecay, 0) {
		return nil, fmt.Errorf("sgd: invalid weight decay %g, expected a finite value >= 0", c.weightDecay)
	}
	if c.nesterov && c.momentum == 0 {
		return nil, errors.New("sgd: Nesterov momentum requires a momentum > 0")
	}
	cfg := *c
	return &SGDOptimizer{config: cfg}, nil
}

// Done is like Build but panics on an invalid configuration. It returns a *SGDOptimizer,
// which implements optimizer.Interface.
func (c *SGDConfig) Done() *SGDOptimizer {
	o, err := c.Build()
	if err != nil {
		panic(err)
	}
	return o
}

// NoDecayForBNAndBias is a weight-decay filter (see SGDConfig.WeightDecayFilter) that
// excludes variables of rank <= 1 -- batch-normalization scales and offsets, and biases --
// and keeps decay for every other variable (weights and kernels).
func NoDecayForBNAndBias(v *model.Variable) bool {
	return v.Shape().Rank() > 1
}

// SGDOptimizer is the SGD optimizer built by SGDConfig. It implements optimizer.Interface
// and GoMLX's train.OptimizeWithGradients (so it can be used with gradient accumulation).
type SGDOptimizer struct {
	config SGDConfig
}

var _ optimizer.Interface = (*SGDOptimizer)(nil)

// String describes the optimizer configuration.
func (o *SGDOptimizer) String() string {
	c := &o.config
	lr := "default"
	if c.lrSet {
		lr = fmt.Sprintf("%g", c.lr)
	}
	filter := "all"
	if c.filter != nil {
		filter = "custom"
	}
	return fmt.Sprintf("SGD(lr=%s, momentum=%g, nesterov=%t, weight_decay=%g, decay_filter=%s)",
		lr, c.momentum, c.nesterov, c.weightDecay, filter)
}

// UpdateGraph builds the graph for one training step: it computes the gradients of
// the scalar loss with respect to every trainable variable of scope used in g and updates
// the variables, the momentum buffers and the global step.
// It implements optimizer.Interface and panics on errors (graph-building function).
func (o *SGDOptimizer) UpdateGraph(scope *model.Scope, g *Graph, theLoss *Node) {
	if !theLoss.Shape().IsScalar() {
		exceptions.Panicf("sgd: optimizer requires a scalar loss to optimize, got loss.shape=%s instead", theLoss.Shape())
	}
	grads := scope.BuildTrainableVariablesGradientsGraph(theLoss)
	o.UpdateGraphWithGradients(scope, grads, theLoss.DType())
}

// UpdateGraphWithGradients is like UpdateGraph, but takes the gradients (in the order of
// scope.BuildTrainableVariablesGradientsGraph) instead of the loss. lossDType is the dtype the
// learning-rate variable is created with, if it doesn't exist yet.
func (o *SGDOptimizer) UpdateGraphWithGradients(scope *model.Scope, grads []*Node, lossDType dtypes.DType) {
	if len(grads) == 0 {
		return
	}
	g := grads[0].Graph()

	lrValue := o.config.lr
	if !o.config.lrSet {
		lrValue = model.GetParamOr(scope, optimizer.ParamLearningRate, optimizer.SGDDefaultLearningRate)
	}
	learningRate := learningRateVar(scope.Store(), lossDType, lrValue).NodeValue(g)
	_ = optimizer.IncrementGlobalStep(g, dtypes.Int64)

	numTrainable := len(grads)
	var vars []*model.Variable
	for v := range scope.IterVariables() {
		if v.Trainable && v.InUseByGraph(g) {
			vars = append(vars, v)
		}
	}
	if len(vars) != numTrainable {
		exceptions.Panicf("sgd: %d gradients given but %d trainable variables in use by the graph "+
			"-- were trainable variables created or their Trainable property changed in between?",
			numTrainable, len(vars))
	}
	// Vectors (batch-norm scales and offsets, biases) are updated together, see applyFlat; the others one by one.
	vectors := map[dtypes.DType][]int{}
	var dtypeOrder []dtypes.DType
	for i, v := range vars {
		if v.Shape().Rank() == 1 {
			if vectors[v.DType()] == nil {
				dtypeOrder = append(dtypeOrder, v.DType())
			}
			vectors[v.DType()] = append(vectors[v.DType()], i)
			continue
		}
		o.applyGraph(scope, g, v, grads[i], learningRate)
	}
	for _, dt := range dtypeOrder {
		idx := vectors[dt]
		if len(idx) == 1 {
			o.applyGraph(scope, g, vars[idx[0]], grads[idx[0]], learningRate)
			continue
		}
		vs := make([]*model.Variable, len(idx))
		gs := make([]*Node, len(idx))
		for k, i := range idx {
			vs[k], gs[k] = vars[i], grads[i]
		}
		o.applyFlat(scope, g, vs, gs, learningRate)
	}
}

// applyGraph updates one trainable variable (and its momentum buffer).
func (o *SGDOptimizer) applyGraph(scope *model.Scope, g *Graph, v *model.Variable, grad, learningRate *Node) {
	grad = o.checkedGradient(scope, v, grad)
	var buf *Node
	if o.config.momentum != 0 {
		buf = momentumVar(scope.Store(), v).NodeValue(g)
	}
	var decay *Node
	if o.decays(v) {
		decay = Scalar(g, v.DType(), o.config.weightDecay)
	}
	updated, newBuf := o.step(scope, v.NodeValue(g), grad, buf, decay, learningRate)
	v.SetNodeValue(updated)
	if newBuf != nil {
		momentumVar(scope.Store(), v).SetNodeValue(newBuf)
	}
}

// applyFlat updates the vectors vs (rank 1, one dtype) and their momentum buffers as one: their values,
// gradients and buffers are concatenated, updated by the same element-wise step as applyGraph's, and cut back.
// The results are the same, bit for bit, with about a quarter of the graph's nodes: a CNN has two such vectors
// per batch norm, and ONNX Runtime's session build time grows with the node count.
func (o *SGDOptimizer) applyFlat(scope *model.Scope, g *Graph, vs []*model.Variable, grads []*Node, learningRate *Node) {
	values := make([]*Node, len(vs))
	var bufs []*Node
	decays := make([]float64, 0, len(vs))
	anyDecay := false
	for i, v := range vs {
		grads[i] = o.checkedGradient(scope, v, grads[i])
		values[i] = v.NodeValue(g)
		if o.config.momentum != 0 {
			bufs = append(bufs, momentumVar(scope.Store(), v).NodeValue(g))
		}
		decay := 0.0
		if o.decays(v) {
			decay, anyDecay = o.config.weightDecay, true
		}
		for range v.Shape().Size() {
			decays = append(decays, decay)
		}
	}
	var buf *Node
	if bufs != nil {
		buf = Concatenate(bufs, 0)
	}
	var decay *Node // the weight decay per element (zero for the vectors without), or nil for none at all
	if anyDecay {
		decay = ConvertDType(Const(g, decays), vs[0].DType())
	}
	updated, newBuf := o.step(scope, Concatenate(values, 0), Concatenate(grads, 0), buf, decay, learningRate)
	off := 0
	for _, v := range vs {
		size := v.Shape().Size()
		v.SetNodeValue(SliceAxis(updated, 0, AxisRange(off, off+size)))
		if newBuf != nil {
			momentumVar(scope.Store(), v).SetNodeValue(SliceAxis(newBuf, 0, AxisRange(off, off+size)))
		}
		off += size
	}
}

// checkedGradient returns v's gradient in v's dtype, traced and cleared of NaNs as GoMLX's optimizers do (when
// the scope asks for it).
func (o *SGDOptimizer) checkedGradient(scope *model.Scope, v *model.Variable, grad *Node) *Node {
	if grad.DType() != v.DType() {
		grad = ConvertDType(grad, v.DType())
	}
	optimizer.TraceNaNInGradients(scope, v, grad)
	return optimizer.ClipNaNsInGradients(scope, grad)
}

// decays reports whether v gets weight decay.
func (o *SGDOptimizer) decays(v *model.Variable) bool {
	c := &o.config
	return c.weightDecay != 0 && (c.filter == nil || c.filter(v))
}

// step is the SGD update of values p with gradients grad, momentum buffers buf (nil without momentum) and weight
// decay (nil for none, a scalar, or one value per element of p; the same dtype as p): it returns the updated
// values and buffers (nil without momentum).
func (o *SGDOptimizer) step(scope *model.Scope, p, grad, buf, decay, learningRate *Node) (updated, newBuf *Node) {
	c := &o.config
	if decay != nil {
		grad = Add(grad, Mul(p, decay))
	}
	if c.momentum != 0 {
		newBuf = Add(MulScalar(buf, c.momentum), grad)
		if c.nesterov {
			grad = Add(grad, MulScalar(newBuf, c.momentum))
		} else {
			grad = newBuf
		}
	}
	lr := learningRate
	if lr.DType() != p.DType() {
		lr = ConvertDType(lr, p.DType())
	}
	step := optimizer.ClipStepByValue(scope, Mul(grad, lr))
	return optimizer.ClipNaNsInUpdates(scope, p, Sub(p, step)), newBuf
}

// momentumVar returns (creating it with zeros if needed) the momentum buffer of the trainable variable v.
func momentumVar(store *model.Store, v *model.Variable) *model.Variable {
	scopePath := path.Join("/", SGDScope, v.Scope())
	return store.Scope(scopePath).
		WithInitializer(initializer.Zero).
		VariableWithShape(v.Name()+MomentumSuffix, v.Shape().Clone()).
		SetTrainable(false)
}

// Clear deletes the optimizer state (the momentum buffers) of the variables under scope.
// The learning-rate variable and the global step are kept.
// It implements optimizer.Interface.
func (o *SGDOptimizer) Clear(scope *model.Scope) error {
	return scope.Store().DeleteVariablesInScope(path.Join("/", SGDScope, scope.Scope()))
}

// learningRateVar returns the learning-rate variable at LearningRatePath. If it exists it is
// returned as is (whatever its dtype: the update casts it to each variable's dtype), otherwise
// it is created with the given dtype and initial value, the way GoMLX's optimizers do.
func learningRateVar(store *model.Store, dtype dtypes.DType, initialValue float64) *model.Variable {
	if v := store.GetVariable(LearningRatePath); v != nil {
		return v.SetTrainable(false)
	}
	return optimizer.LearningRateVar(store.RootScope(), dtype, initialValue)
}

// SetLearningRate sets the value of the learning-rate variable (at LearningRatePath) read
// by the SGD optimizer at every step. Compiled training graphs read it as an input, so
// the new value takes effect at the next step without recompiling. Call it between steps,
// not concurrently with one.
//
// If the variable exists its dtype is kept; otherwise it is created, non-trainable, with
// DefaultLearningRateDType (GoMLX's train.NewTrainer deletes it at construction, so call
// SetLearningRate after creating the trainer, or let the optimizer create it with its
// configured initial value).
func SetLearningRate(store *model.Store, lr float64) error {
	if lr < 0 || math.IsNaN(lr) || math.IsInf(lr, 0) {
		return fmt.Errorf("invalid learning rate %g, expected a finite value >= 0", lr)
	}
	v := store.GetVariable(LearningRatePath)
	if v == nil {
		t, err := tensors.FromAnyValue(shapes.CastAsDType(lr, DefaultLearningRateDType))
		if err != nil {
			return fmt.Errorf("creating learning rate variable %q: %w", LearningRatePath, err)
		}
		v, err = store.CreateVariable(LearningRatePath, t)
		if err != nil {
			return fmt.Errorf("creating learning rate variable %q: %w", LearningRatePath, err)
		}
		v.SetTrainable(false)
		return nil
	}
	if !v.Shape().IsScalar() || !v.DType().IsFloat() {
		return fmt.Errorf("learning rate variable %q has shape %s, expected a float scalar",
			LearningRatePath, v.Shape())
	}
	t, err := tensors.FromAnyValue(shapes.CastAsDType(lr, v.DType()))
	if err != nil {
		return fmt.Errorf("converting learning rate %g to %s: %w", lr, v.DType(), err)
	}
	if err := v.SetValue(t); err != nil {
		return fmt.Errorf("setting learning rate variable %q: %w", LearningRatePath, err)
	}
	v.SetTrainable(false) // Variables restored by a checkpoint loader start as trainable.
	return nil
}

// LearningRate returns the current value of the learning-rate variable (at LearningRatePath),
// converted to float64. It returns an error if the variable doesn't exist or has no value.
func LearningRate(store *model.Store) (float64, error) {
	v := store.GetVariable(LearningRatePath)
	if v == nil {
		return 0, fmt.Errorf("learning rate variable %q not found", LearningRatePath)
	}
	if !v.HasValue() {
		return 0, fmt.Errorf("learning rate variable %q has no value", LearningRatePath)
	}
	if !v.Shape().IsScalar() {
		return 0, fmt.Errorf("learning rate variable %q has shape %s, expected a scalar",
			LearningRatePath, v.Shape())
	}
	t, err := v.Value()
	if err != nil {
		return 0, fmt.Errorf("reading learning rate variable %q: %w", LearningRatePath, err)
	}
	return scalarToFloat64(t.Value())
}

// scalarToFloat64 converts a scalar tensor value to float64.
func scalarToFloat64(x any) (float64, error) {
	switch val := x.(type) {
	case float64:
		return val, nil
	case float32:
		return float64(val), nil
	case interface{ Float32() float32 }: // float16 and bfloat16.
		return float64(val.Float32()), nil
	}
	rv := reflect.ValueOf(x)
	if rv.IsValid() && rv.CanConvert(reflect.TypeFor[float64]()) {
		return rv.Convert(reflect.TypeFor[float64]()).Float(), nil
	}
	return 0, fmt.Errorf("learning rate value %v of type %T is not a number", x, x)
}
