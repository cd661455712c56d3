package ortlib

import (
	"fmt"
	"os"
)

// Progress receives progress lines while the library is fetched on first
// use. It prints to stderr by default; set it to nil to stay quiet.
var Progress = func(line string) { fmt.Fprintln(os.Stderr, "strata:", line) }
