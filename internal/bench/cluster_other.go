//go:build !linux

package bench

import "syscall"

// dieWithParent has no way to tie a child to this process here: stop
// kills the nodes on every exit path but a kill of this process.
func dieWithParent() *syscall.SysProcAttr { return nil }
