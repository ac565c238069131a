package audit

import (
	"os"
	"strconv"
)

// PeerExe names the executable of process pid, as /proc/PID/exe links to
// it; "" when it cannot be read (the process ended, or pid is unknown).
// It is read when the request arrives: a process may exec another program
// later, and a pid can be reused once its process ended.
func PeerExe(pid int) string {
	if pid <= 0 {
		return ""
	}
	exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	if err != nil {
		return ""
	}
	return exe
}
