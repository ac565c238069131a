package vpiv

import (
	"net"

	"golang.org/x/sys/unix"
)

// setQuickAck turns on TCP_QUICKACK, which the kernel clears again after a
// while: vpcd writes the length and the APDU separately, and without quick
// ACKs Nagle on its side plus delayed ACK on ours stall every APDU ~40 ms.
func setQuickAck(c *net.TCPConn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_QUICKACK, 1)
	}); err != nil {
		return err
	}
	return serr
}
