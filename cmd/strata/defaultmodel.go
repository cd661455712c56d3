package main

import (
	"errors"
)

// defaultModelDir returns the package directory of the built-in model,
// exporting it into the user cache on first use, and its prompt template.
func defaultModelDir() (string, func(string) string, error) {
	return "", nil, errors.New("the built-in default model is not built yet: pass --model")
}
