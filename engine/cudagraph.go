package engine

import (
	"slices"
	"strconv"

	"github.com/strata-llm/strata/engine/ortdev"
	"github.com/strata-llm/strata/models/manifest"
	"github.com/strata-llm/strata/models/onnx"
)

// CUDA graphs for fused decode steps (docs/design.md, "CUDA graphs").
//
// With enable_cuda_graph, ONNX Runtime's CUDA provider runs a session
// normally for a graph id's first runs, then records one run's kernel
// launches as a CUDA graph and from then on replays it: a replay reads the
// inputs and writes the outputs at the device addresses of the run it
// recorded and does not look at the binding again. So a fused decode step
// gets a graph id per binding — per runner and step size, whose KV pairs,
// token ids, seqlens_k and logits stay at fixed addresses for the runner's
// life —, its seqlens_k goes to a device buffer before each run, and only a
// graph whose shapes do not follow total_seq_len is captured, since that
// input stays in host memory and a replay keeps the value it recorded.

// gpuGraphID is the run configuration key naming the captured graph a run
// records or replays.
const gpuGraphID = "gpu_graph_id"

// captureGraphs are the fused sessions opened with graph capture and the
// graph ids handed out.
type captureGraphs struct {
	sessions map[*ortdev.Session]bool
	next     int
}

// capturing records that s was opened with graph capture.
func (c *captureGraphs) capturing(s *ortdev.Session) {
	if c.sessions == nil {
		c.sessions = map[*ortdev.Session]bool{}
	}
	c.sessions[s] = true
}

// graphRun returns run options naming a new graph id for one binding of
// s, or nil when s does not capture.
func (f *fusion) graphRun(s *ortdev.Session) (*ortdev.RunOptions, error) {
	f.mu.Lock()
	captures := f.graphs.sessions[s]
	id := f.graphs.next
	if captures {
		f.graphs.next++
	}
	f.mu.Unlock()
	if !captures {
		return nil, nil
	}
	ro, err := f.g.api.NewRunOptions()
	if err != nil {
		return nil, err
	}
	if err := ro.AddConfigEntry(gpuGraphID, strconv.Itoa(id)); err != nil {
		ro.Close()
		return nil, err
	}
	return ro, nil
}

// capturable reports whether a layer graph's shapes stay the same from one
// decode step to the next whatever total_seq_len says: nothing but
// GroupQueryAttention reads it, whose KV buffers of max_seq_len shared by
// past and present fix its shapes, and which takes each row's length from
// seqlens_k in device memory. BLOOM's ALiBi bias, sized by total_seq_len,
// is not capturable.
func capturable(layer *onnx.Model) bool {
	for _, n := range layer.Graph.Nodes {
		if n.OpType != "GroupQueryAttention" && slices.Contains(n.Inputs, manifest.TotalSeqLen) {
			return false
		}
	}
	return true
}
