package kernels

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/strata-llm/strata/models/onnx"
)

func TestParse(t *testing.T) {
	in := "# comment\n\n" +
		"cuda\tai.onnx\tAdd\t7\t12\tT=float16,double\n" +
		"cuda\t\tAdd\t14\t-\tT=float,float16\n" +
		"cuda\tcom.microsoft\tGroupQueryAttention\t1\t-\tM=int32;T=float16,bfloat16\n" +
		"cuda\tai.onnx\tShape\t1\t-\t-\n"
	tab, err := Parse(strings.NewReader(in), "t.tsv")
	if err != nil {
		t.Fatal(err)
	}
	if tab.Provider != "cuda" {
		t.Errorf("provider %q", tab.Provider)
	}
	add := tab.Lookup("", "Add")
	if len(add) != 2 || add[0].Domain != "ai.onnx" || add[1].Until != Open {
		t.Fatalf("Add kernels %+v", add)
	}
	if got := add[0].Constraints["T"]; !reflect.DeepEqual(got, []string{"double", "float16"}) {
		t.Errorf("constraint T %v, want sorted [double float16]", got)
	}
	gqa := tab.Lookup("com.microsoft", "GroupQueryAttention")
	if len(gqa) != 1 || gqa[0].Allows("T", "float") || !gqa[0].Allows("T", "float16") || !gqa[0].Allows("M", "int32") ||
		!gqa[0].Allows("T_CACHE", "float") {
		t.Errorf("GroupQueryAttention kernel %+v", gqa)
	}
	if len(tab.Lookup("ai.onnx", "Shape")[0].Constraints) != 0 {
		t.Error("a row with constraints - has constraints")
	}
	if tab.Lookup("ai.onnx", "Mul") != nil {
		t.Error("Mul has kernels")
	}
	if got := tab.Ops(); !reflect.DeepEqual(got, []string{"ai.onnx:Add", "ai.onnx:Shape", "com.microsoft:GroupQueryAttention"}) {
		t.Errorf("Ops() = %v", got)
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct{ name, row, want string }{
		{"columns", "cpu\tai.onnx\tAdd\t7\t12", "5 columns"},
		{"since", "cpu\tai.onnx\tAdd\tx\t12\tT=float", `since "x"`},
		{"until before since", "cpu\tai.onnx\tAdd\t7\t6\tT=float", `until "6"`},
		{"constraint", "cpu\tai.onnx\tAdd\t7\t12\tT", `constraint "T"`},
		{"type", "cpu\tai.onnx\tAdd\t7\t12\tT=floot", `unknown element type "floot"`},
		{"duplicate constraint", "cpu\tai.onnx\tAdd\t7\t12\tT=float;T=int32", "given twice"},
		{"overlap", "cpu\tai.onnx\tAdd\t7\t12\tT=float\ncpu\tai.onnx\tAdd\t12\t-\tT=float", "overlaps [7, 12]"},
		{"two providers", "cpu\tai.onnx\tAdd\t7\t12\tT=float\ncuda\tai.onnx\tMul\t7\t12\tT=float", "provider cuda after cpu"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(c.row+"\n"), "bad.tsv")
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "bad.tsv line") {
				t.Fatalf("Parse: %v, want an error with %q and the line", err, c.want)
			}
		})
	}
}

func TestMatches(t *testing.T) {
	for _, c := range []struct {
		k     Kernel
		since int64
		want  bool
	}{
		{Kernel{Since: 14}, 14, true},
		{Kernel{Since: 13}, 14, false}, // open-ended: only the version it starts at
		{Kernel{Since: 7, Until: 12}, 7, true},
		{Kernel{Since: 7, Until: 12}, 12, true},
		{Kernel{Since: 7, Until: 12}, 13, false},
		{Kernel{Since: 13, Until: 13}, 13, true},
	} {
		if got := c.k.Matches(c.since); got != c.want {
			t.Errorf("%s.Matches(%d) = %v, want %v", c.k.Range(), c.since, got, c.want)
		}
	}
}

// TestPinnedTables loads every embedded table and checks rows that the
// placement check depends on.
func TestPinnedTables(t *testing.T) {
	for _, c := range []struct {
		provider, version, domain, op string
		since                         int64
		constraint, typ               string
		want                          bool
	}{
		{"cuda", "1.29.0", "com.microsoft", "GroupQueryAttention", 1, "T", "float", false},
		{"cuda", "1.29.0", "com.microsoft", "GroupQueryAttention", 1, "T", "float16", true},
		{"cuda", "1.29.0", "com.microsoft", "MatMulNBits", 1, "T1", "float", true},
		{"cuda", "1.29.0", "ai.onnx", "Range", 11, "T", "int32", true},
		{"cpu", "1.30.0", "com.microsoft", "GroupQueryAttention", 1, "T", "float", true},
		{"cpu", "1.30.0", "ai.onnx", "MatMul", 13, "T", "float16", false},
		{"cpu", "1.30.0", "ai.onnx", "SimplifiedLayerNormalization", 1, "T", "float", true},
		{"webgpu", "1.30.0", "com.microsoft", "GroupQueryAttention", 1, "T", "float", true},
		{"webgpu", "1.30.0", "ai.onnx", "Concat", 13, "T", "int64", false},
		{"webgpu", "1.30.0", "ai.onnx", "Slice", 13, "T", "float16", true},
	} {
		tab, err := Load(c.provider, c.version)
		if err != nil {
			t.Fatal(err)
		}
		if tab.Provider != c.provider || tab.Version != c.version {
			t.Fatalf("Load(%s, %s) = %s %s", c.provider, c.version, tab.Provider, tab.Version)
		}
		var k *Kernel
		for _, kk := range tab.Lookup(c.domain, c.op) {
			if kk.Matches(c.since) {
				k = &kk
			}
		}
		if k == nil {
			t.Errorf("%s: no %s:%s kernel for opset %d", c.provider, c.domain, c.op, c.since)
			continue
		}
		if got := k.Allows(c.constraint, c.typ); got != c.want {
			t.Errorf("%s %s:%s %s allows %s = %v, want %v", c.provider, c.domain, c.op, c.constraint, c.typ, got, c.want)
		}
	}
	if _, err := Load("cuda", "1.30.0"); !errors.Is(err, ErrNoTable) {
		t.Errorf("Load(cuda, 1.30.0): %v, want ErrNoTable", err)
	}
}

func TestTypeName(t *testing.T) {
	for dt, want := range map[onnx.DataType]string{onnx.Float: "float", onnx.Float16: "float16", onnx.Int64: "int64", 16: "bfloat16", 99: "type(99)"} {
		if got := TypeName(dt); got != want {
			t.Errorf("TypeName(%d) = %q, want %q", dt, got, want)
		}
	}
}
