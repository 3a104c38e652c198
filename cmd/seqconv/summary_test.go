package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestSummaryTable checks the B22 table against docs/ARCHITECTURE.md, Counting (per-component tables).
func TestSummaryTable(t *testing.T) {
	code, out, errOut := runCLI(t, "summary", "seqresnet-b22")
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
	assertNoCrash(t, out, errOut)
	rows := map[string][]string{}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 5 {
			rows[f[0]] = f
		}
	}
	for name, want := range map[string][]string{
		"Head0":                      {"112x112x32", "928", "10,838,016", "0"},
		"Head2":                      {"112x112x128", "47,616", "590,872,576", "0"},
		"Stage1/0/LayerA":            {"56x56x128", "53,760", "166,985,728", "0"},
		"Downsample1/ShrinkingLayer": {"28x28x256", "147,968", "115,605,504", "0"},
		"Blender":                    {"7x7x1024", "1,050,624", "51,380,224", "0"},
		"Classifier":                 {"1x1x1000", "1,025,000", "0", "1,024,000"},
		"total":                      {"1x1x1000", "11,859,656", "2,881,708,032", "1,024,000"},
	} {
		got := rows[name]
		if len(got) < 5 || strings.Join(got[1:5], " ") != strings.Join(want, " ") {
			t.Errorf("row %s: %q, want %q", name, got, want)
		}
	}
	if !strings.Contains(out, "SeqConv dense k=32 filters=4 out=128") {
		t.Errorf("no SeqConv description:\n%s", out)
	}
}

// TestSummaryJSON checks the JSON report: the rows add up to the total, which equals "seqconv models".
func TestSummaryJSON(t *testing.T) {
	for _, args := range [][]string{
		{"summary", "seqresnet-cifar-demo", "--json"},
		{"summary", "--json", "--depth", "1", "--resolution", "64", "--classes", "100", "seqresnet-cifar-demo"},
		{"summary", "--json", tinyModelConfig(t)},
	} {
		code, out, errOut := runCLI(t, args...)
		if code != 0 {
			t.Fatalf("%q: exit %d, stderr:\n%s", args, code, errOut)
		}
		var rep summaryReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("%q: %v\n%s", args, err, out)
		}
		var params, conv, fc int64
		for _, r := range rep.Rows {
			params += r.Params
			conv += r.ConvMACs
			fc += r.FCMACs
		}
		if params != rep.Total.Params || conv != rep.Total.ConvMACs || fc != rep.Total.FCMACs || len(rep.Rows) < 5 {
			t.Errorf("%q: rows sum to %d params, %d conv and %d FC MACs; total %+v", args, params, conv, fc, rep.Total)
		}
		if args[1] == "seqresnet-cifar-demo" && (rep.Total.Params != 843_834 || rep.Total.MACs() != 204_360_992 ||
			rep.Resolution != 32 || rep.Classes != 10) {
			t.Errorf("%q: total %+v at %d, want 843,834 params and 204,360,992 MACs at 32 (docs/ARCHITECTURE.md, Counting)",
				args, rep.Total, rep.Resolution)
		}
		if args[2] == "--depth" && (rep.Resolution != 64 || rep.Classes != 100 || rep.Total.Params != 874_164 ||
			rep.Rows[2].Name != "Stage1" || rep.Total.ConvMACs != 4*204_357_632) {
			t.Errorf("%q: %d classes at %d, total %+v, rows[2] %s", args, rep.Classes, rep.Resolution, rep.Total,
				rep.Rows[2].Name)
		}
	}
}

// TestModelsResolution checks "seqconv models --resolution" and the conv/FC split of its JSON.
func TestModelsResolution(t *testing.T) {
	code, out, errOut := runCLI(t, "models", "--json", "--resolution", "64")
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
	var infos []modelInfo
	if err := json.Unmarshal([]byte(out), &infos); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range infos {
		if m.Resolution != 64 || m.MACs != m.ConvMACs+m.FCMACs || m.FCMACs <= 0 {
			t.Errorf("%s: %+v", m.Name, m)
		}
		if m.Name == "seqresnet-cifar-demo" {
			found = true
			// Twice the resolution: four times the conv MACs; the classifier is unchanged.
			if m.ConvMACs != 4*204_357_632 || m.FCMACs != 3_360 || m.Params != 843_834 {
				t.Errorf("demo at 64x64: %+v", m)
			}
		}
	}
	if !found {
		t.Errorf("seqresnet-cifar-demo not listed")
	}
}

func TestSummaryBadInputs(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"summary"}, "want one model"},
		{[]string{"summary", "seqresnet-b22", "seqresnet-b42"}, "got 2 arguments"},
		{[]string{"summary", "nope"}, "unknown model"},
		{[]string{"summary", "seqresnet-b22", "--depth", "-1"}, "--depth"},
		{[]string{"summary", "seqresnet-b22", "--classes", "-1"}, "--classes"},
		{[]string{"summary", "seqresnet-b22", "--resolution", "-8"}, "--resolution"},
		{[]string{"summary", "seqresnet-b22", "--nope"}, "nope"},
		{[]string{"models", "--resolution", "-1"}, "--resolution"},
	} {
		code, out, errOut := runCLI(t, tc.args...)
		if code != exitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("%q: exit %d, stderr:\n%s", tc.args, code, errOut)
		}
		assertNoCrash(t, out, errOut)
	}
}
