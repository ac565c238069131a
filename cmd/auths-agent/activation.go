package main

import (
	"fmt"
	"net"

	"github.com/coreos/go-systemd/v22/activation"
)

// systemdListener returns the unix socket systemd passed to this process
// (socket activation: LISTEN_PID and LISTEN_FDS), or nil when it passed
// none. The socket file belongs to systemd: closing the listener leaves it
// in place, so the next client starts the agent again.
func systemdListener() (net.Listener, error) {
	ls, err := activation.Listeners()
	if err != nil {
		return nil, fmt.Errorf("socket activation: %w", err)
	}
	closeAll := func() {
		for _, l := range ls {
			if l != nil {
				l.Close()
			}
		}
	}
	switch {
	case len(ls) == 0:
		return nil, nil
	case len(ls) > 1:
		closeAll()
		return nil, fmt.Errorf("socket activation: systemd passed %d sockets, want one (a single ListenStream=)", len(ls))
	case ls[0] == nil:
		return nil, fmt.Errorf("socket activation: file descriptor 3 is not a listening stream socket")
	}
	ul, ok := ls[0].(*net.UnixListener)
	if !ok {
		closeAll()
		return nil, fmt.Errorf("socket activation: a %s socket was passed, want a unix socket", ls[0].Addr().Network())
	}
	ul.SetUnlinkOnClose(false) // the default for a listener made from a file; said for the reader
	return ul, nil
}
