package llama2c

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"math"
	"os"

	"github.com/strata-llm/strata/models/llama"
)

// Write stores Hugging Face layout weights from src as a legacy llama2.c
// checkpoint with header h (the inverse of Open, as llama2.c's export.py
// legacy_export does), one tensor at a time.
func Write(path string, h Header, src llama.WeightSource) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write llama2.c checkpoint: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("write llama2.c checkpoint: %w", cerr)
		}
	}()
	w := bufio.NewWriterSize(f, 1<<20)
	vocab := int32(h.Vocab)
	if !h.Shared {
		vocab = -vocab
	}
	for _, v := range []int32{int32(h.Dim), int32(h.HiddenDim), int32(h.Layers), int32(h.Heads), int32(h.KVHeads), vocab, int32(h.SeqLen)} {
		binary.Write(w, binary.LittleEndian, v)
	}
	put := func(data []float32) {
		buf := make([]byte, 0, 4*len(data))
		for _, v := range data {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
		}
		w.Write(buf)
	}
	cfg := h.Config()
	get := func(name string, permute int) error {
		want, err := cfg.ShapeOf(name)
		if err != nil {
			return err
		}
		data, err := llama.Load(src, name, want)
		if err != nil {
			return fmt.Errorf("write llama2.c checkpoint: %w", err)
		}
		if permute > 0 {
			data = PermuteFromHF(data, permute, want[0], want[1])
		}
		put(data)
		return nil
	}
	layerNames := []struct {
		suffix  string
		permute int
	}{
		{"input_layernorm.weight", 0}, {"self_attn.q_proj.weight", h.Heads}, {"self_attn.k_proj.weight", h.KVHeads},
		{"self_attn.v_proj.weight", 0}, {"self_attn.o_proj.weight", 0}, {"post_attention_layernorm.weight", 0},
		{"mlp.gate_proj.weight", 0}, {"mlp.down_proj.weight", 0}, {"mlp.up_proj.weight", 0},
	}
	if err := get(llama.EmbedName, 0); err != nil {
		return err
	}
	for _, n := range layerNames {
		for l := 0; l < h.Layers; l++ {
			if err := get(llama.LayerPrefix(l)+n.suffix, n.permute); err != nil {
				return err
			}
		}
	}
	if err := get(llama.NormName, 0); err != nil {
		return err
	}
	half := h.HeadDim() / 2
	re, im := make([]float32, h.SeqLen*half), make([]float32, h.SeqLen*half)
	for t := 0; t < h.SeqLen; t++ {
		for i := 0; i < half; i++ {
			a := float64(t) / math.Pow(10000, float64(2*i)/float64(h.HeadDim()))
			re[t*half+i], im[t*half+i] = float32(math.Cos(a)), float32(math.Sin(a))
		}
	}
	put(re)
	put(im)
	if !h.Shared {
		if err := get(llama.LMHeadName, 0); err != nil {
			return err
		}
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write llama2.c checkpoint: %w", err)
	}
	return nil
}
