package engine

import (
	"errors"

	"github.com/strata-llm/strata/models/manifest"
)

// deviceModel is the device-resident path: sessions created through
// engine/ortdev, tensors allocated in the device's memory.
type deviceModel struct{}

func openDevice(libPath string, opts Options, man *manifest.Manifest, embed string, layers []string, head string) (*deviceModel, error) {
	return nil, errors.New("the device-resident path is not built yet")
}

func (d *deviceModel) newExecutor(batch int, kept []int) (executor, error) {
	return nil, errors.New("the device-resident path is not built yet")
}

func (d *deviceModel) close() {}
