package check

import (
	"fmt"
	"os/exec"
	"regexp"
)

// flagLine matches a flag in cobra's help: "  -h, --help" or "      --nats string".
var flagLine = regexp.MustCompile(`(?m)^\s+(?:-\w, )?--([a-z0-9][a-z0-9-]*)`)

// ServeFlags returns the flags `teatree serve` accepts, from the help of
// the binary at bin: the flags the manifests pass must be among them.
func ServeFlags(bin string) (map[string]bool, error) {
	out, err := exec.Command(bin, "serve", "--help").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%s serve --help: %w\n%s", bin, err, out)
	}
	flags := map[string]bool{}
	for _, m := range flagLine.FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	if !flags["nats"] {
		return nil, fmt.Errorf("%s serve --help lists no --nats flag; is it teatree?\n%s", bin, out)
	}
	return flags, nil
}
