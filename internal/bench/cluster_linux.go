package bench

import "syscall"

// dieWithParent makes a child process die with this one, whatever ends
// it.
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
