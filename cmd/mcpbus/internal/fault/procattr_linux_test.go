package fault

import "syscall"

// procAttr makes a child die with the test process (SIGKILL when its parent
// goes), so a test killed by its timeout leaves no NATS node or service
// running.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
