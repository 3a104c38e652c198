package models

import (
	"fmt"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	_ "github.com/gomlx/compute/gobackend"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/train/loss"
	"github.com/seqconv/seqconv/engine"
	"github.com/seqconv/seqconv/layers"
)

// TestBaselineCounts checks the torchvision baselines against docs/ARCHITECTURE.md, Counting (reference
// totals) at 224x224: exact parameter counts, conv+FC MACs (in units of 1e9, to 3 decimals) and the paper's FLOPs
// (THOP 2019 / 2^30) both to 3 decimals (within float32-accumulation noise) and as the paper prints them.
func TestBaselineCounts(t *testing.T) {
	backend := engine.MustNewForTest()
	tests := []struct {
		name      string
		params    int64
		macs1e9   string  // conv+FC MACs / 1e9, %.3f
		thop      float64 // thop-2019 ops / 2^30 (docs/ARCHITECTURE.md, Counting)
		paper     string  // the paper's table
		convLayer int
		numVars   int // torchvision's state_dict entries: convs + 5 per BN + fc weight and bias
		// Exact integers (this implementation's, consistent with the 1e9 column above): conv and FC MACs.
		convMACs, fcMACs int64
	}{
		{"resnet50", 25_557_032, "4.089", 3.858, "3.86", 53, 320, 4_087_136_256, 2_048_000},
		{"resnet101", 44_549_160, "7.801", 7.338, "7.34", 104, 626, 7_799_357_440, 2_048_000},
		{"resnet152", 60_192_808, "11.514", 10.822, "10.82", 155, 932, 11_511_578_624, 2_048_000},
		{"resnext50-32x4d", 25_028_904, "4.230", 4.002, "4.00", 53, 320, 4_228_431_872, 2_048_000},
		{"densenet169", 14_149_480, "3.360", 3.220, "3.22", 168, 1015, 3_358_179_328, 1_664_000},
		{"densenet264", 33_337_704, "5.752", 5.519, "5.52", 264, 1591, 5_748_965_376, 2_688_000},
	}
	for _, tc := range tests {
		c, err := Get(tc.name)
		if err != nil {
			t.Fatal(err)
		}
		s, err := Inspect(backend, c, 224)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%-16s params=%d conv=%d fc=%d layers=%d MACs=%.4fe9 paper=%.5f", tc.name, s.Params, s.ConvMACs,
			s.FCMACs, s.ConvLayers, float64(s.MACs())/1e9, s.PaperGFLOPs)
		if s.Params != tc.params {
			t.Errorf("%s: params = %d, want %d", tc.name, s.Params, tc.params)
		}
		if got := fmt.Sprintf("%.3f", float64(s.MACs())/1e9); got != tc.macs1e9 {
			t.Errorf("%s: conv+FC MACs = %s e9, want %s e9", tc.name, got, tc.macs1e9)
		}
		if s.ConvMACs != tc.convMACs || s.FCMACs != tc.fcMACs {
			t.Errorf("%s: conv MACs %d, FC MACs %d, want %d and %d", tc.name, s.ConvMACs, s.FCMACs, tc.convMACs,
				tc.fcMACs)
		}
		if s.ConvLayers != tc.convLayer || s.NumVars != tc.numVars {
			t.Errorf("%s: %d conv layers and %d variables, want %d and %d", tc.name, s.ConvLayers, s.NumVars,
				tc.convLayer, tc.numVars)
		}
		if got := fmt.Sprintf("%.3f", s.PaperGFLOPs); got != fmt.Sprintf("%.3f", tc.thop) {
			t.Errorf("%s: paper GFLOPs = %.5f, want %.3f", tc.name, s.PaperGFLOPs, tc.thop)
		}
		if got := s.PaperFLOPs(); got != tc.paper {
			t.Errorf("%s: paper GFLOPs print as %s, want %s", tc.name, got, tc.paper)
		}
	}
}

// TestBaselineVariableNames checks that variable paths map onto torchvision's state_dict keys.
func TestBaselineVariableNames(t *testing.T) {
	backend := engine.MustNewForTest()
	for _, tc := range []struct {
		cfg  Config
		keys []string
	}{
		{Config{Family: FamilyResNet, Classes: 10, Resolution: 32, BlocksPerStage: []int{2, 1, 1, 1}, Groups: 2,
			WidthPerGroup: 8}, []string{"conv1.weight", "bn1.weight", "bn1.num_batches_tracked",
			"layer1.0.conv1.weight", "layer1.0.conv2.weight", "layer1.1.bn3.running_var",
			"layer1.0.downsample.0.weight", "layer1.0.downsample.1.running_mean", "layer4.0.downsample.1.bias",
			"fc.weight", "fc.bias"}},
		{Config{Family: FamilyDenseNet, Classes: 10, Resolution: 32, BlocksPerStage: []int{2, 2}, GrowthRate: 4,
			BNSize: 2, InitFeatures: 8}, []string{"features.conv0.weight", "features.norm0.running_mean",
			"features.denseblock1.denselayer1.norm1.weight", "features.denseblock1.denselayer2.conv2.weight",
			"features.transition1.norm.bias", "features.transition1.conv.weight",
			"features.denseblock2.denselayer2.norm2.running_var", "features.norm5.weight",
			"classifier.weight", "classifier.bias"}},
	} {
		store := model.NewStore()
		g := NewGraph(backend, "names")
		model.SetStore(g, store)
		tc.cfg.Build(store.RootScope(), Parameter(g, "x", shapes.Make(dtypes.Float32, 1, 32, 32, 3)))
		have := map[string]bool{}
		for v := range store.IterVariables() {
			have[strings.ReplaceAll(v.Path()[1:], "/", ".")] = true
		}
		for _, k := range tc.keys {
			if !have[k] {
				t.Errorf("%s: no variable for torchvision key %q", tc.cfg.Family, k)
			}
		}
		if t.Failed() {
			t.Logf("variables: %v", have)
		}
	}
}

// TestBaselineTrainStep runs tiny baselines (a ResNeXt-style ResNet with one block per stage and a two-block
// DenseNet, 64x64 and 32x32 inputs) on the Go backend: inference logits, then one SGD step in training mode, checking
// shapes, finite values, a gradient for every trainable variable and updated BN running statistics.
func TestBaselineTrainStep(t *testing.T) {
	backend := engine.MustNewForTest()
	for _, cfg := range []Config{
		// At 64x64 the last stage still has 2x2 pixels, so every BN sees more than 2 values per channel.
		{Name: "tiny-resnet", Family: FamilyResNet, Classes: 10, Resolution: 64, BlocksPerStage: []int{1, 1, 1, 1},
			Groups: 2, WidthPerGroup: 8},
		{Name: "tiny-densenet", Family: FamilyDenseNet, Classes: 10, Resolution: 32, BlocksPerStage: []int{2, 3},
			GrowthRate: 4, BNSize: 2, InitFeatures: 8, DropRate: 0.2},
	} {
		t.Run(cfg.Name, func(t *testing.T) {
			const batch = 2
			x := tensors.FromShape(shapes.Make(dtypes.Float32, batch, cfg.Resolution, cfg.Resolution, 3))
			tensors.MutableFlatData(x, func(d []float32) {
				for i := range d {
					d[i] = float32(math.Sin(0.37*float64(i) + 0.1))
				}
			})
			labels := tensors.FromValue([]int32{3, 7})
			store := model.NewStore()
			evalExec, err := model.NewExec(backend, store, func(scope *model.Scope, x *Node) *Node {
				scope.Store().SetTraining(x.Graph(), false)
				return cfg.Build(scope, x)
			})
			if err != nil {
				t.Fatal(err)
			}
			out, err := evalExec.Call(x)
			if err != nil {
				t.Fatal(err)
			}
			checkFinite(t, "eval logits", out[0], batch, cfg.Classes)

			numTrainable := 0
			trainExec, err := model.NewExec(backend, store, func(scope *model.Scope, x, labels *Node) []*Node {
				g := x.Graph()
				scope.Store().SetTraining(g, true)
				logits := cfg.Build(scope, x)
				l := ReduceAllMean(loss.SparseCategoricalCrossEntropyLogits([]*Node{ExpandAxes(labels, -1)},
					[]*Node{logits}))
				var vars []*model.Variable
				var values []*Node
				for v := range scope.IterVariables() {
					if v.Trainable {
						vars = append(vars, v)
						values = append(values, v.NodeValue(g))
					}
				}
				numTrainable = len(vars)
				grads := Gradient(l, values...)
				sqs := make([]*Node, len(grads))
				for i, gr := range grads {
					sqs[i] = ReduceAllSum(Square(gr))
					vars[i].SetNodeValue(Sub(values[i], MulScalar(gr, 0.01)))
				}
				sq := Stack(sqs, 0)
				return []*Node{logits, l, Sqrt(ReduceAllSum(sq)), sq}
			})
			if err != nil {
				t.Fatal(err)
			}
			out, err = trainExec.Call(x, labels)
			if err != nil {
				t.Fatal(err)
			}
			checkFinite(t, "train logits", out[0], batch, cfg.Classes)
			lossV, norm := out[1].Value().(float32), out[2].Value().(float32)
			t.Logf("%s on %s: %d trainable variables, loss %.4f, gradient L2 %.4f", cfg.Name, backend.Name(),
				numTrainable, lossV, norm)
			for i, sq := range tensors.MustCopyFlatData[float32](out[3]) {
				if !(sq > 0) || math.IsInf(float64(sq), 0) {
					t.Errorf("trainable variable #%d: squared gradient norm %v, want finite and > 0", i, sq)
				}
			}
			if !(lossV > 0) || math.IsInf(float64(lossV), 0) || !(norm > 0) || math.IsInf(float64(norm), 0) {
				t.Errorf("loss %v, gradient norm %v: want finite and positive", lossV, norm)
			}
			for v := range store.IterVariables() {
				if strings.HasSuffix(v.Path(), "num_batches_tracked") {
					if n := v.MustValue().Value().(int64); n != 1 {
						t.Errorf("%s = %d after one training step, want 1", v.Path(), n)
					}
				}
			}
			// A second inference with the updated weights and running statistics stays finite.
			out, err = evalExec.Call(x)
			if err != nil {
				t.Fatal(err)
			}
			checkFinite(t, "eval logits after a step", out[0], batch, cfg.Classes)
		})
	}
}

func checkFinite(t *testing.T, what string, logits *tensors.Tensor, batch, classes int) {
	t.Helper()
	if dims := logits.Shape().Dimensions; len(dims) != 2 || dims[0] != batch || dims[1] != classes {
		t.Fatalf("%s: shape %s, want [%d, %d]", what, logits.Shape(), batch, classes)
	}
	for _, v := range tensors.MustCopyFlatData[float32](logits) {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			t.Fatalf("%s: non-finite value %v", what, v)
		}
	}
}

// TestPools checks layers.MaxPool2d and layers.AvgPool2d (every lowering the test engine runs) against a direct
// computation of PyTorch's semantics on a 7x7 input (floor mode, padding, count_include_pad) and their gradients
// (max: to each window's maximum), in float64 at 1e-12 on the Go backend and in float32 at 1e-5 on ONNX
// Runtime.
func TestPools(t *testing.T) {
	backend := engine.MustNewForTest()
	type poolCase struct {
		max                     bool
		kernel, stride, padding int
	}
	// The Go backend cannot differentiate GoMLX's native pools (no SelectAndScatter; its Pad rejects the negative
	// padding of the SumPool gradient), which the native lowering uses; a non-overlapping avg pool is a reshape
	// with every lowering.
	reshaped := func(pc poolCase) bool { return !pc.max && pc.kernel == pc.stride && pc.padding == 0 }
	type variant struct {
		lowering string
		layout   layers.Layout
		grad     func(poolCase) bool // whether the gradient is checked
	}
	always := func(poolCase) bool { return true }
	variants, tol := []variant{
		{"im2col", layers.NHWC, always},
		{"native", layers.NHWC, reshaped},
		{"onnx", layers.NHWC, always},
		{"onnx", layers.NCHW, always},
	}, 1e-12
	if !engine.IsGo(backend) {
		variants, tol = []variant{{"auto", layers.NHWC, always}, {"auto", layers.NCHW, always}}, 1e-5
	}
	const n, h, w, c = 2, 7, 7, 3
	data := make([]float64, n*h*w*c)
	for i := range data {
		data[i] = math.Sin(1.3*float64(i) + 0.7*float64(i%5))
	}
	at := func(b, i, j, ch int) float64 { return data[((b*h+i)*w+j)*c+ch] }
	// ref returns PyTorch's pool output and, for d/dx sum(y * r) with r = channel+1, the expected gradient.
	ref := func(pc poolCase) (out []float64, ho, wo int, grad []float64) {
		grad = make([]float64, len(data))
		ho = (h+2*pc.padding-pc.kernel)/pc.stride + 1
		wo = (w+2*pc.padding-pc.kernel)/pc.stride + 1
		for b := range n {
			for oi := range ho {
				for oj := range wo {
					for ch := range c {
						best, sum, arg, r := math.Inf(-1), 0.0, -1, float64(ch+1)
						for u := range pc.kernel {
							for v := range pc.kernel {
								i, j := oi*pc.stride-pc.padding+u, oj*pc.stride-pc.padding+v
								if i < 0 || j < 0 || i >= h || j >= w {
									continue
								}
								if x := at(b, i, j, ch); x > best {
									best, arg = x, ((b*h+i)*w+j)*c+ch
								}
								sum += at(b, i, j, ch)
								if !pc.max {
									grad[((b*h+i)*w+j)*c+ch] += r / float64(pc.kernel*pc.kernel)
								}
							}
						}
						if pc.max {
							out = append(out, best)
							grad[arg] += r
						} else {
							out = append(out, sum/float64(pc.kernel*pc.kernel))
						}
					}
				}
			}
		}
		return
	}
	x := tensors.FromFlatDataAndDimensions(data, n, h, w, c)
	if !engine.IsGo(backend) {
		f32 := make([]float32, len(data))
		for i, v := range data {
			f32[i] = float32(v)
		}
		x = tensors.FromFlatDataAndDimensions(f32, n, h, w, c)
	}
	for _, v := range variants {
		for _, pc := range []poolCase{{true, 3, 2, 1}, {true, 2, 2, 0}, {false, 2, 2, 0}, {false, 3, 2, 1}, {false, 3, 1, 0}} {
			want, ho, wo, wantGrad := ref(pc)
			res, err := ExecOnceN(backend, func(x *Node) []*Node {
				scope := model.NewStore().RootScope()
				scope.SetParam(layers.ParamLowering, v.lowering)
				scope.SetParam(layers.ParamLayout, v.layout)
				var y *Node
				if pc.max {
					y = layers.MaxPool2d(scope, v.layout.FromNHWC(x), pc.kernel, pc.stride, pc.padding)
				} else {
					y = layers.AvgPool2d(scope, v.layout.FromNHWC(x), pc.kernel, pc.stride, pc.padding)
				}
				y = v.layout.ToNHWC(y)
				outs := []*Node{y}
				if v.grad(pc) {
					// d/dx sum(y * r): r at each window's maximum, or r/k² at each element of the window.
					r := Iota(x.Graph(), y.Shape(), 3)
					outs = append(outs, Gradient(ReduceAllSum(Mul(y, AddScalar(r, 1))), x)[0])
				}
				return outs
			}, x)
			if err != nil {
				t.Fatalf("%s %s %+v: %v", v.lowering, v.layout, pc, err)
			}
			if dims := res[0].Shape().Dimensions; dims[1] != ho || dims[2] != wo {
				t.Fatalf("%s %s %+v: shape %s, want %dx%d", v.lowering, v.layout, pc, res[0].Shape(), ho, wo)
			}
			got := float64s(res[0])
			for i := range want {
				if math.Abs(got[i]-want[i]) > tol {
					t.Fatalf("%s %s %+v: element %d = %v, want %v", v.lowering, v.layout, pc, i, got[i], want[i])
				}
			}
			if len(res) > 1 {
				gotGrad := float64s(res[1])
				for i := range wantGrad {
					if math.Abs(gotGrad[i]-wantGrad[i]) > tol {
						t.Fatalf("%s %s %+v: gradient element %d = %v, want %v", v.lowering, v.layout, pc, i, gotGrad[i],
							wantGrad[i])
					}
				}
			}
		}
	}
}

// float64s returns the values of a float32 or float64 tensor as float64.
func float64s(x *tensors.Tensor) []float64 {
	if x.DType() == dtypes.Float32 {
		var out []float64
		for _, v := range tensors.MustCopyFlatData[float32](x) {
			out = append(out, float64(v))
		}
		return out
	}
	return tensors.MustCopyFlatData[float64](x)
}

// TestBaselineValidate checks that bad baseline configs give errors naming the key.
func TestBaselineValidate(t *testing.T) {
	resnet := func(f func(*Config)) Config {
		c := Config{Family: FamilyResNet, Classes: 10, BlocksPerStage: []int{1, 1, 1, 1}}
		f(&c)
		return c
	}
	dense := func(f func(*Config)) Config {
		c := Config{Family: FamilyDenseNet, Classes: 10, BlocksPerStage: []int{2, 2}}
		f(&c)
		return c
	}
	for _, tc := range []struct {
		cfg Config
		key string
	}{
		{resnet(func(c *Config) { c.BlocksPerStage = []int{1, 1, 1} }), "blocks_per_stage"},
		{resnet(func(c *Config) { c.BlocksPerStage = []int{1, 0, 1, 1} }), "blocks_per_stage"},
		{resnet(func(c *Config) { c.Groups = -1 }), "groups"},
		{resnet(func(c *Config) { c.WidthPerGroup = -4 }), "width_per_group"},
		{resnet(func(c *Config) { c.GrowthRate = 12 }), "growth_rate"},
		{resnet(func(c *Config) { c.DropRate = 0.1 }), "drop_rate"},
		{resnet(func(c *Config) { c.Granularity = IntList{16} }), "granularity"},
		{resnet(func(c *Config) { c.Classes = 0 }), "classes"},
		{resnet(func(c *Config) { c.Resolution = 16 }), "resolution"},
		{dense(func(c *Config) { c.GrowthRate = -1 }), "growth_rate"},
		{dense(func(c *Config) { c.BNSize = -1 }), "bn_size"},
		{dense(func(c *Config) { c.InitFeatures = -1 }), "init_features"},
		{dense(func(c *Config) { c.Groups = 32 }), "groups"},
		{dense(func(c *Config) { c.DropRate = 1 }), "drop_rate"},
		{dense(func(c *Config) { c.BlocksPerStage = nil }), "blocks_per_stage"},
		{dense(func(c *Config) { c.BlocksPerStage = []int{1, 1, 1, 1, 1, 1}; c.Resolution = 64 }), "resolution"},
		{Config{Family: FamilyImageNet, Classes: 10, BlocksPerStage: []int{1, 1, 1, 1}, Widening: 1,
			Granularity: IntList{16}, GrowthRate: 4}, "growth_rate"},
	} {
		err := tc.cfg.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), tc.key+":") {
			t.Errorf("%+v: error %v, want one about %q", tc.cfg, err, tc.key)
		}
	}
	for _, name := range []string{"resnet50", "resnet101", "resnet152", "resnext50-32x4d", "densenet169", "densenet264"} {
		c, err := Get(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestBaselineJSON loads baseline configs from JSON files (the keys of Config).
func TestBaselineJSON(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := dir + "/" + name
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	c, err := Get(write("tiny-resnext.json", `{"family": "resnet", "classes": 10, "resolution": 32,
		"blocks_per_stage": [1, 1, 1, 1], "groups": 2, "width_per_group": 8}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Groups != 2 || c.WidthPerGroup != 8 || c.InChannels != 3 || c.bottleneckWidth(64) != 16 {
		t.Errorf("tiny-resnext: got %+v", c)
	}
	c, err = Get(write("tiny-densenet.json", `{"family": "densenet", "classes": 10, "resolution": 32,
		"blocks_per_stage": [2, 3], "growth_rate": 4, "bn_size": 2, "init_features": 8, "drop_rate": 0.1}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Widths(); len(got) != 2 || got[0] != 16 || got[1] != 20 {
		t.Errorf("tiny-densenet widths %v, want [16 20]", got)
	}
	if _, err := Get(write("bad.json", `{"family": "resnet", "classes": 10, "blocks_per_stage": [1, 1, 1, 1],
		"growth_rate": 4}`)); err == nil || !strings.Contains(err.Error(), "growth_rate:") {
		t.Errorf("resnet with growth_rate: error %v, want one about growth_rate", err)
	}
}
