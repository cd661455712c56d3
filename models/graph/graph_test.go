package graph

import (
	"slices"
	"strings"
	"testing"
)

func TestCheckOptions(t *testing.T) {
	for _, tc := range []struct {
		opts         Options
		maxPos, head int
		want         Options
		err          string
	}{
		{Options{}, 0, 64, Options{DType: DTypeFP32, Compute: "fp32", MaxSeqLen: DefaultMaxSeqLen, Int4Block: Int4BlockSize}, ""},
		{Options{}, 512, 64, Options{DType: DTypeFP32, Compute: "fp32", MaxSeqLen: 512, Int4Block: Int4BlockSize}, ""},
		{Options{DType: DTypeInt4, MaxSeqLen: 100}, 0, 16, Options{DType: DTypeInt4, Compute: "fp32", MaxSeqLen: 100, Int4Block: Int4BlockSize}, ""},
		{Options{DType: DTypeInt4, Int4Block: 128}, 0, 16, Options{DType: DTypeInt4, Compute: "fp32", MaxSeqLen: DefaultMaxSeqLen, Int4Block: 128}, ""},
		{Options{DType: DTypeInt4, Compute: "fp16"}, 0, 16, Options{DType: DTypeInt4, Compute: "fp16", MaxSeqLen: DefaultMaxSeqLen, Int4Block: Int4BlockSize}, ""},
		{Options{Compute: "fp16"}, 0, 16, Options{}, "needs dtype fp16 or int4"},
		{Options{DType: DTypeFP16, Compute: "bf16"}, 0, 16, Options{}, "compute type"},
		{Options{DType: DTypeInt4, Int4Block: 48}, 0, 16, Options{}, "block size 48"},
		{Options{DType: "fp8"}, 0, 64, Options{}, "dtype"},
		{Options{MaxSeqLen: -1}, 0, 64, Options{}, "max sequence length"},
		{Options{}, 0, 24, Options{}, "multiple of 16"},
	} {
		got, err := CheckOptions(tc.opts, tc.maxPos, tc.head)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%+v: error %v, want %q", tc.opts, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%+v: %+v %v, want %+v", tc.opts, got, err, tc.want)
		}
	}
}

func TestTranspose(t *testing.T) {
	if got := Transpose([]float32{1, 2, 3, 4, 5, 6}, 2, 3); !slices.Equal(got, []float32{1, 4, 2, 5, 3, 6}) {
		t.Errorf("Transpose = %v", got)
	}
	if Transpose([]float32{1}, 2, 2) != nil {
		t.Error("wrong size accepted")
	}
}
