//go:build unix

package upstream

import (
	"os/exec"
	"syscall"
)

// ownProcessGroup puts the child in a process group of its own: a Ctrl-C meant
// for the gateway does not hit it behind the supervisor's back, and signalling
// the group reaches the grandchildren a wrapper such as npx leaves behind.
func ownProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// signalGroup signals the child's whole process group.
func signalGroup(cmd *exec.Cmd, sig syscall.Signal) error {
	return syscall.Kill(-cmd.Process.Pid, sig)
}
