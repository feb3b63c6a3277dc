// Package modbin builds the command of a module the build pins (go.mod,
// or tools/go.mod through go.work) from the module cache, once per
// machine and version: for tests and benchmarks that run a real server as
// a child process.
package modbin

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// Build returns the path of pkg, a main package of module, built at the
// version the build pins. The binary is kept in the user's cache
// directory under its name and version, and built only if missing.
func Build(module, pkg string) (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", module).Output()
	if err != nil {
		return "", fmt.Errorf("find the pinned version of %s: %w", module, exitErr(err))
	}
	version := strings.TrimSpace(string(out))
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "teatree")
	bin := filepath.Join(dir, filepath.Base(pkg)+"-"+version)
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	// Build beside and rename, so a parallel process never runs half a
	// file.
	tmp := fmt.Sprintf("%s.%d.tmp", bin, os.Getpid())
	cmd := exec.Command("go", "build", "-o", tmp, pkg)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("go build %s@%s: %w", pkg, version, err)
	}
	return bin, os.Rename(tmp, bin)
}

// Binary returns a function that returns the path in the environment
// variable env, when it is set, or else pkg of module built by Build; the
// build is tried once per process.
func Binary(env, module, pkg string) func() (string, error) {
	return sync.OnceValues(func() (string, error) {
		if bin := os.Getenv(env); bin != "" {
			return bin, nil
		}
		return Build(module, pkg)
	})
}

func exitErr(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ee.Stderr)))
	}
	return err
}
