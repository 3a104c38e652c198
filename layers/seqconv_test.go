package layers

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/seqconv/seqconv/engine"
)

// img is a plain-Go NHWC float64 image batch for the reference implementation below.
type img struct {
	n, h, w, c int
	d          []float64
}

func (a img) at(n, y, x, c int) float64 { return a.d[((n*a.h+y)*a.w+x)*a.c+c] }

func newImg(n, h, w, c int) img { return img{n, h, w, c, make([]float64, n*h*w*c)} }

// refConv is a naive "same" convolution with an HWIO kernel, stride 1, groups g.
func refConv(x img, k []float64, kh, cout, groups int) img {
	out := newImg(x.n, x.h, x.w, cout)
	cg, og := x.c/groups, cout/groups
	p := (kh - 1) / 2
	for n := range x.n {
		for y := range x.h {
			for xx := range x.w {
				for o := range cout {
					grp := o / og
					var s float64
					for u := range kh {
						for v := range kh {
							iy, ix := y+u-p, xx+v-p
							if iy < 0 || iy >= x.h || ix < 0 || ix >= x.w {
								continue
							}
							for ci := range cg {
								s += x.at(n, iy, ix, grp*cg+ci) * k[((u*kh+v)*cg+ci)*cout+o]
							}
						}
					}
					out.d[((n*x.h+y)*x.w+xx)*cout+o] = s
				}
			}
		}
	}
	return out
}

// refBNReLU applies inference-mode BN with fresh statistics (mean 0, var 1, γ=1, β=0) and ReLU.
func refBNReLU(x img) img {
	out := newImg(x.n, x.h, x.w, x.c)
	for i, v := range x.d {
		out.d[i] = math.Max(v/math.Sqrt(1+1e-5), 0)
	}
	return out
}

func channels(x img, from, to int) img {
	out := newImg(x.n, x.h, x.w, to-from)
	for p := range x.n * x.h * x.w {
		copy(out.d[p*(to-from):(p+1)*(to-from)], x.d[p*x.c+from:p*x.c+to])
	}
	return out
}

func concatImg(xs ...img) img {
	c := 0
	for _, x := range xs {
		c += x.c
	}
	out := newImg(xs[0].n, xs[0].h, xs[0].w, c)
	for p := range out.n * out.h * out.w {
		off := 0
		for _, x := range xs {
			copy(out.d[p*c+off:p*c+off+x.c], x.d[p*x.c:(p+1)*x.c])
			off += x.c
		}
	}
	return out
}

// TestSeqConvMatchesReference builds small SeqConv layers (plain and bottleneck filters; dense, the authors'
// window and free windows g'; grouped 3x3; a shortcut) in inference mode with random weights and compares
// them with a direct plain-Go transcription of docs/ARCHITECTURE.md, The SeqConv layer: filter j reads the
// last W channels of [x, E_0, ..., E_{j-1}] (everything when dense) and the shortcut slice j is added before BN.
func TestSeqConvMatchesReference(t *testing.T) {
	backend := engine.MustNewForTest()
	tests := []struct {
		name                    string
		cin, cout, k            int
		bottleneck              bool
		dense                   bool
		windowGroups, subgroups int
		shortcut                bool
	}{
		{"plain windowed", 6, 6, 2, false, false, 0, 1, false},
		{"plain dense", 4, 6, 2, false, true, 0, 1, false},
		{"bottleneck windowed shortcut", 6, 6, 2, true, false, 0, 1, true},
		{"bottleneck window g'=2", 6, 8, 2, true, false, 2, 1, false},
		{"bottleneck window g'=5 wider than input", 4, 8, 2, true, false, 5, 1, false},
		{"bottleneck subgroups", 8, 8, 4, true, false, 0, 2, true},
		{"bottleneck dense", 4, 8, 4, true, true, 0, 2, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(3, 4))
			const n, h, w = 2, 5, 4
			x := randTensor(rng, n, h, w, tc.cin)
			s := randTensor(rng, n, h, w, tc.cout)
			store := model.NewStore()
			exec, err := model.NewExec(backend, store, func(scope *model.Scope, x, s *Node) []*Node {
				store.SetTraining(x.Graph(), false)
				b := SeqConv(scope, x).Granularity(tc.k).Channels(tc.cout).Bottleneck(tc.bottleneck).
					Subgroups(tc.subgroups).Window(tc.windowGroups)
				if tc.dense {
					b.Dense()
				}
				if tc.shortcut {
					b.Shortcut(s).Junction(1)
				}
				raw, act := b.Done()
				return []*Node{raw, act}
			})
			if err != nil {
				t.Fatal(err)
			}
			out, err := exec.Call(x, s)
			if err != nil {
				t.Fatal(err)
			}
			weight := func(path string) []float64 {
				v := store.GetVariable(path)
				if v == nil {
					t.Fatalf("no variable %s", path)
				}
				return tensors.MustCopyFlatData[float64](v.MustValue())
			}
			xi := img{n, h, w, tc.cin, tensors.MustCopyFlatData[float64](x)}
			si := img{n, h, w, tc.cout, tensors.MustCopyFlatData[float64](s)}
			seq := xi
			var raws, acts []img
			for j := range tc.cout / tc.k {
				view := seq
				win := tc.cin
				if tc.windowGroups > 0 {
					win = tc.windowGroups * tc.k
				}
				if !tc.dense && seq.c > win {
					view = channels(seq, seq.c-win, seq.c)
				}
				f := fmt.Sprintf("/Filters/%d", j)
				var raw img
				if tc.bottleneck {
					hid := refBNReLU(refConv(view, weight(f+"/BottleneckLayer/LinearLayer/weight"), 1, tc.k, 1))
					raw = refConv(hid, weight(f+"/TransformationLayer/LinearLayer/weight"), 3, tc.k, tc.subgroups)
				} else {
					raw = refConv(view, weight(f+"/LinearLayer/weight"), 3, tc.k, 1)
				}
				if tc.shortcut {
					sc := channels(si, j*tc.k, (j+1)*tc.k)
					for i := range raw.d {
						raw.d[i] += sc.d[i]
					}
				}
				act := refBNReLU(raw)
				raws, acts = append(raws, raw), append(acts, act)
				seq = concatImg(seq, act)
			}
			for i, want := range []img{concatImg(raws...), concatImg(acts...)} {
				got := tensors.MustCopyFlatData[float64](out[i])
				if len(got) != len(want.d) {
					t.Fatalf("output %d: %d values, want %d", i, len(got), len(want.d))
				}
				// 1e-10 on the Go backend; float32 rounding on ONNX Runtime, whose convolutions compute in float32.
				tol := 1e-10
				if !isGoBackend(backend) {
					tol = relTol(backend)
				}
				for e := range got {
					if math.Abs(got[e]-want.d[e]) > tol*max(1, math.Abs(want.d[e])) {
						t.Fatalf("output %d element %d: got %g, want %g", i, e, got[e], want.d[e])
					}
				}
			}
			// The structure: filter j's first conv reads exactly its view's width.
			for j := range tc.cout / tc.k {
				wantIn := tc.cin
				switch {
				case tc.dense:
					wantIn = tc.cin + j*tc.k
				case tc.windowGroups > 0:
					wantIn = min(tc.windowGroups*tc.k, tc.cin+j*tc.k)
				}
				p := fmt.Sprintf("/Filters/%d/LinearLayer/weight", j)
				if tc.bottleneck {
					p = fmt.Sprintf("/Filters/%d/BottleneckLayer/LinearLayer/weight", j)
				}
				if got := store.GetVariable(p).Shape().Dim(2); got != wantIn {
					t.Errorf("filter %d reads %d channels, want %d", j, got, wantIn)
				}
			}
		})
	}
}

// TestBatchNormPyTorchSemantics checks a training step of BatchNorm against PyTorch's BatchNorm2d rules:
// normalisation with the biased batch variance, running_mean/var updated with momentum 0.1 and the unbiased
// variance, num_batches_tracked incremented, and inference with the running statistics.
func TestBatchNormPyTorchSemantics(t *testing.T) {
	backend := engine.MustNewForTest()
	rng := rand.New(rand.NewPCG(5, 6))
	const n, h, w, c = 3, 2, 2, 3
	x := randTensor(rng, n, h, w, c)
	xd := tensors.MustCopyFlatData[float64](x)
	store := model.NewStore()
	train := model.MustNewExec(backend, store, func(scope *model.Scope, x *Node) *Node {
		store.SetTraining(x.Graph(), true)
		return BatchNorm(scope, x).Done()
	})
	y := tensors.MustCopyFlatData[float64](train.MustCall(x)[0])
	m := float64(n * h * w)
	for ch := range c {
		var mean, sq float64
		for p := range n * h * w {
			mean += xd[p*c+ch]
		}
		mean /= m
		for p := range n * h * w {
			sq += (xd[p*c+ch] - mean) * (xd[p*c+ch] - mean)
		}
		biased, unbiased := sq/m, sq/(m-1)
		for p := range n * h * w {
			want := (xd[p*c+ch] - mean) / math.Sqrt(biased+1e-5)
			if math.Abs(y[p*c+ch]-want) > 1e-12 {
				t.Fatalf("train output channel %d: got %g want %g", ch, y[p*c+ch], want)
			}
		}
		rm := tensors.MustCopyFlatData[float64](store.GetVariable("/running_mean").MustValue())[ch]
		rv := tensors.MustCopyFlatData[float64](store.GetVariable("/running_var").MustValue())[ch]
		if math.Abs(rm-0.1*mean) > 1e-12 || math.Abs(rv-(0.9+0.1*unbiased)) > 1e-12 {
			t.Errorf("channel %d: running mean/var %g/%g, want %g/%g", ch, rm, rv, 0.1*mean, 0.9+0.1*unbiased)
		}
	}
	if got := store.GetVariable("/num_batches_tracked").MustValue().Value().(int64); got != 1 {
		t.Errorf("num_batches_tracked = %d, want 1", got)
	}
	// Inference uses the running statistics.
	eval := model.MustNewExec(backend, store, func(scope *model.Scope, x *Node) *Node {
		store.SetTraining(x.Graph(), false)
		return BatchNorm(scope, x).Done()
	})
	ye := tensors.MustCopyFlatData[float64](eval.MustCall(x)[0])
	rm := tensors.MustCopyFlatData[float64](store.GetVariable("/running_mean").MustValue())
	rv := tensors.MustCopyFlatData[float64](store.GetVariable("/running_var").MustValue())
	for i, v := range xd {
		want := (v - rm[i%c]) / math.Sqrt(rv[i%c]+1e-5)
		if math.Abs(ye[i]-want) > 1e-12 {
			t.Fatalf("eval output %d: got %g want %g", i, ye[i], want)
		}
	}
}
