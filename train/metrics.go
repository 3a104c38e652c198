package train

import (
	"fmt"
	"math"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	gtrain "github.com/gomlx/gomlx/ml/train"
	"github.com/gomlx/gomlx/ml/train/loss"
	"github.com/gomlx/gomlx/ml/train/metric"
	"github.com/gomlx/gomlx/support/exceptions"
)

// ErrorMetricType is the metric.Interface MetricType of the classification-error metrics of this
// package (values in %, lower is better).
const ErrorMetricType = "error"

// classLabels checks logits [B, C] and integer labels [B] (or [B, 1]) and returns the labels as [B].
func classLabels(logits, labels *Node) *Node {
	if logits.Rank() != 2 {
		exceptions.Panicf("logits must be shaped [batch, classes], got %s", logits.Shape())
	}
	if !labels.DType().IsInt() {
		exceptions.Panicf("labels must be integers, got %s", labels.Shape())
	}
	if labels.Rank() == 2 && labels.Shape().Dim(1) == 1 {
		labels = Reshape(labels, labels.Shape().Dim(0))
	}
	if labels.Rank() != 1 || labels.Shape().Dim(0) != logits.Shape().Dim(0) {
		exceptions.Panicf("labels must be shaped [%d] (or [%d, 1]) for logits %s, got %s",
			logits.Shape().Dim(0), logits.Shape().Dim(0), logits.Shape(), labels.Shape())
	}
	return labels
}

// SoftmaxCrossEntropy returns the per-example softmax cross-entropy [B] of logits [B, C] with the
// integer class labels [B] (or [B, 1]), computed with a numerically stable log-softmax.
//
// With labelSmoothing = eps > 0 the target distribution is (1-eps)*onehot + eps/C, as in
// PyTorch's CrossEntropyLoss(label_smoothing=eps). It panics (GoMLX style) on bad shapes or an eps
// outside [0, 1].
func SoftmaxCrossEntropy(logits, labels *Node, labelSmoothing float64) *Node {
	labels = classLabels(logits, labels)
	if labelSmoothing < 0 || labelSmoothing > 1 || math.IsNaN(labelSmoothing) {
		exceptions.Panicf("label smoothing must be in [0, 1], got %g", labelSmoothing)
	}
	if !logits.DType().IsFloat() {
		exceptions.Panicf("logits must be floats, got %s", logits.Shape())
	}
	logits = upcast(logits)
	numClasses := logits.Shape().Dim(1)
	logProbs := LogSoftmax(logits, -1)
	target := OneHot(labels, numClasses, logits.DType())
	if labelSmoothing > 0 {
		target = AddScalar(MulScalar(target, 1-labelSmoothing), labelSmoothing/float64(numClasses))
	}
	return Neg(ReduceSum(Mul(target, logProbs), -1))
}

// upcast converts half-precision floats to float32, so that reductions keep their precision.
func upcast(x *Node) *Node {
	if x.DType() == dtypes.Float16 || x.DType() == dtypes.BFloat16 {
		return ConvertDType(x, dtypes.Float32)
	}
	return x
}

// CrossEntropyLoss returns a GoMLX loss function (see gtrain.Trainer): the mean over the batch of
// SoftmaxCrossEntropy(logits, labels, ·), taking predictions[0] as the logits [B, C] and labels[0]
// as the integer labels [B] (or [B, 1]).
//
// Label smoothing is applied only in training graphs (those whose model.Store says
// IsTraining); evaluation graphs get the plain cross-entropy (the negative log-likelihood), so
// validation losses are comparable across label-smoothing settings.
func CrossEntropyLoss(labelSmoothing float64) loss.LossFn {
	return func(labels, predictions []*Node) *Node {
		if len(labels) < 1 || len(predictions) < 1 {
			exceptions.Panicf("CrossEntropyLoss needs one labels and one logits tensor, got %d and %d",
				len(labels), len(predictions))
		}
		eps := labelSmoothing
		g := predictions[0].Graph()
		if store := model.GetStore(g); store == nil || !store.IsTraining(g) {
			eps = 0
		}
		return ReduceAllMean(SoftmaxCrossEntropy(predictions[0], labels[0], eps))
	}
}

// TopKError returns, per example, 1 if the label is not among the k largest logits and 0
// otherwise, as logits' dtype (float32 for half precision), shaped [B].
//
// The rank of the label is the number of classes whose logit is strictly greater than the label's:
// ties count in favour of the label. When k >= C (for instance top-5 with fewer than 5 classes)
// the error is always 0, except that an example whose logits are not all finite (NaN or Inf) always
// counts as an error. It panics for k < 1 or bad shapes.
func TopKError(logits, labels *Node, k int) *Node {
	if k < 1 {
		exceptions.Panicf("top-k error needs k >= 1, got %d", k)
	}
	labels = classLabels(logits, labels)
	logits = upcast(logits)
	dtype := logits.DType()
	numClasses := logits.Shape().Dim(1)
	isLabel := ConvertDType(OneHot(labels, numClasses, dtypes.Float32), dtypes.Bool)
	labelLogit := ReduceSum(Where(isLabel, logits, ZerosLike(logits)), -1) // [B]
	higher := ConvertDType(GreaterThan(logits, ExpandAxes(labelLogit, -1)), dtype)
	rank := ReduceSum(higher, -1) // [B]
	wrong := GreaterOrEqual(rank, Scalar(logits.Graph(), dtype, float64(k)))
	// |x| < +Inf is false exactly for NaN and ±Inf; it stands for IsFinite, which ONNX Runtime lacks.
	finite := LessThan(Abs(logits), Scalar(logits.Graph(), dtype, math.Inf(1)))
	notFinite := LogicalNot(LogicalAll(finite, -1))
	return ConvertDType(LogicalOr(wrong, notFinite), dtype)
}

// topKErrorPercentFn returns the metric graph function of the batch top-k error in %.
func topKErrorPercentFn(k int) metric.BaseMetricGraph {
	return func(_ *model.Scope, labels, predictions []*Node) *Node {
		if len(labels) < 1 || len(predictions) < 1 {
			exceptions.Panicf("top-%d error metric needs labels and logits", k)
		}
		return MulScalar(ReduceAllMean(TopKError(predictions[0], labels[0], k)), 100)
	}
}

// PrettyPrintPercent formats a scalar metric already expressed in % as "12.34%".
func PrettyPrintPercent(value *tensors.Tensor) string {
	return fmt.Sprintf("%.2f%%", shapes.ConvertTo[float64](value.Value()))
}

// NewTopKErrorMetric returns a mean metric (over all the examples seen since its last Reset) of
// the top-k classification error in %: the percentage of examples whose label is not among the k
// largest logits (see TopKError). Used as an evaluation metric, it is the error over the whole
// evaluated dataset; used as a training metric it is the running mean over the examples trained on
// since the last reset (GoMLX's Loop resets training metrics at each RunEpochs/RunSteps).
func NewTopKErrorMetric(name, shortName string, k int) *metric.MeanMetric {
	return metric.NewMeanMetric(name, shortName, ErrorMetricType, topKErrorPercentFn(k), PrettyPrintPercent)
}

// NewTop1ErrorMetric returns NewTopKErrorMetric("Top-1 Error", "err", 1).
func NewTop1ErrorMetric() *metric.MeanMetric { return NewTopKErrorMetric("Top-1 Error", "err", 1) }

// NewTop5ErrorMetric returns NewTopKErrorMetric("Top-5 Error", "top5", 5).
func NewTop5ErrorMetric() *metric.MeanMetric { return NewTopKErrorMetric("Top-5 Error", "top5", 5) }

// NewMeanLossMetric returns a mean metric of the total training loss (main plus regularization
// losses registered with the GoMLX trainer) over the examples seen since its last Reset: as a
// training metric, the mean training loss of the epoch.
func NewMeanLossMetric() *metric.MeanMetric {
	return metric.NewMeanMetric("Mean Train Loss", "mloss", metric.LossMetricType,
		func(_ *model.Scope, _, predictions []*Node) *Node {
			g := predictions[0].Graph()
			l := gtrain.TotalLoss(g)
			if l == nil {
				return ScalarZero(g, dtypes.Float32)
			}
			return l
		}, nil)
}
