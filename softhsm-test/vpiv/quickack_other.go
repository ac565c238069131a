//go:build !linux

package vpiv

import (
	"errors"
	"net"
)

// setQuickAck is Linux-only; elsewhere APDUs may stall on delayed ACKs.
func setQuickAck(*net.TCPConn) error { return errors.New("TCP_QUICKACK is Linux-only") }
