package manifest

import (
	"encoding/json"
	"fmt"
)

// ParseTokenIDs reads a Hugging Face token-id entry (bos_token_id,
// eos_token_id, …) that may be absent, null, an int or a list of ints.
func ParseTokenIDs(key string, raw json.RawMessage) ([]int, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one int
	if err := json.Unmarshal(raw, &one); err == nil {
		return []int{one}, nil
	}
	var list []int
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("%s must be an int or a list of ints, got %s", key, raw)
	}
	return list, nil
}
