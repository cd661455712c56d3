package engine_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/strata-llm/strata/engine"
	"github.com/strata-llm/strata/models/llama"
)

// exportRandomModel writes a small random 8-layer model package; real
// programs point engine.Load at a directory made by `strata export`.
func exportRandomModel(dir string) error {
	cfg := llama.Config{ModelType: "llama", NumLayers: 8, HiddenSize: 64, NumHeads: 4, NumKVHeads: 2, HeadDim: 16,
		IntermediateSize: 128, VocabSize: 256, MaxPositionEmbeddings: 128, RopeTheta: 10000, RMSNormEps: 1e-5, BOSID: 1}
	opts := llama.GraphOptions{DType: "fp32", MaxSeqLen: 128}
	files, err := llama.WriteAll(dir, cfg, llama.RandomWeights(cfg, 1), opts, false)
	if err != nil {
		return err
	}
	man := cfg.Manifest()
	man.DType, man.MaxSeqLen, man.Files = "fp32", opts.MaxSeqLen, files
	return man.Save(dir)
}

// Load a package and generate with Unified Layer Skipping at 2×: the prompt
// runs through all 8 layers, every new token through layers 0, 2, 4 and 7.
func Example() {
	dir, err := os.MkdirTemp("", "strata-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := exportRandomModel(dir); err != nil {
		log.Fatal(err)
	}

	m, err := engine.Load(dir, engine.Options{Speedup: 2})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	res, err := m.Generate(context.Background(), engine.Request{PromptIDs: []int{1, 17, 42, 99}, MaxTokens: 5})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("kept layers:", res.KeptLayers)
	fmt.Println("new tokens:", len(res.TokenIDs), "stop:", res.StopReason)

	// Several prompts decode together; each row stops on its own.
	results, err := m.GenerateBatch(context.Background(), []engine.Request{
		{PromptIDs: []int{1, 5}, MaxTokens: 2},
		{PromptIDs: []int{1, 6, 7, 8}, MaxTokens: 4, SamplingOptions: engine.SamplingOptions{Temperature: 0.8, TopP: 0.9, Seed: 3}},
	}, nil)
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range results {
		fmt.Println(len(r.TokenIDs), r.StopReason)
	}
	// Output:
	// kept layers: [0 2 4 7]
	// new tokens: 5 stop: max_tokens
	// 2 max_tokens
	// 4 max_tokens
}
