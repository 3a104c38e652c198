package layers

import (
	"strings"
	"testing"

	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/support/exceptions"
)

// TestScopeParams checks that the scope hyperparameters read a typed value, a name (through
// encoding.TextUnmarshaler, see scopeParam) or nothing (the default), and panic on unknown names.
func TestScopeParams(t *testing.T) {
	tests := []struct {
		name    string
		param   string
		value   any // nil: unset
		read    func(*model.Scope) any
		want    any // nil: a panic whose message contains wantErr
		wantErr string
	}{
		{"lowering default", ParamLowering, nil, func(s *model.Scope) any { return loweringFromScope(s) }, LoweringAuto, ""},
		{"lowering typed", ParamLowering, LoweringONNX, func(s *model.Scope) any { return loweringFromScope(s) }, LoweringONNX, ""},
		{"lowering name", ParamLowering, "im2col", func(s *model.Scope) any { return loweringFromScope(s) }, LoweringIm2Col, ""},
		{"layout default", ParamLayout, nil, func(s *model.Scope) any { return layoutFromScope(s) }, NHWC, ""},
		{"layout name", ParamLayout, "nchw", func(s *model.Scope) any { return layoutFromScope(s) }, NCHW, ""},
		{"precision typed", ParamPrecision, PrecisionBF16, func(s *model.Scope) any { return precisionFromScope(s) }, PrecisionBF16, ""},
		{"precision name", ParamPrecision, "bf16", func(s *model.Scope) any { return precisionFromScope(s) }, PrecisionBF16, ""},
		{"impl default", ParamSeqConvImpl, nil, func(s *model.Scope) any { return seqConvImplFromScope(s) }, SeqConvFused, ""},
		{"impl name", ParamSeqConvImpl, "direct", func(s *model.Scope) any { return seqConvImplFromScope(s) }, SeqConvDirect, ""},
		{"impl unknown name", ParamSeqConvImpl, "fast", func(s *model.Scope) any { return seqConvImplFromScope(s) }, nil,
			`scope parameter "seqconv_impl": unknown SeqConv implementation "fast", expected fused|direct`},
		{"impl of another type", ParamSeqConvImpl, 1, func(s *model.Scope) any { return seqConvImplFromScope(s) }, nil,
			`scope parameter "seqconv_impl": want a layers.SeqConvImpl or its name, got int`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			scope := model.NewStore().RootScope().In("Net")
			if tc.value != nil {
				scope.SetParam(tc.param, tc.value)
			}
			var got any
			err := exceptions.TryCatch[error](func() { got = tc.read(scope) })
			switch {
			case tc.want == nil && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("%s = %v: got %v (%v), want a panic: %s", tc.param, tc.value, got, err, tc.wantErr)
			case tc.want != nil && (err != nil || got != tc.want):
				t.Errorf("%s = %v: got %v (%v), want %v", tc.param, tc.value, got, err, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		parse func(string) (any, error)
		name  string
		want  string
	}{
		{func(s string) (any, error) { return ParseLowering(s) }, "x", `unknown convolution lowering "x", expected auto|native|im2col|onnx`},
		{func(s string) (any, error) { return ParseLayout(s) }, "x", `unknown image layout "x", expected nhwc|nchw`},
		{func(s string) (any, error) { return ParseSeqConvImpl(s) }, "x", `unknown SeqConv implementation "x", expected fused|direct`},
	} {
		if _, err := tc.parse(tc.name); err == nil || err.Error() != tc.want {
			t.Errorf("error %v, want %s", err, tc.want)
		}
	}
}
