package vpiv

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"
)

// vpcd control bytes: a one-byte payload from the reader.
const (
	ctrlPowerOff = 0x00
	ctrlPowerOn  = 0x01
	ctrlReset    = 0x02
	ctrlATR      = 0x04
)

// ServeOptions tunes Serve.
type ServeOptions struct {
	// Retry is the pause between connection attempts; zero means 200 ms.
	Retry time.Duration
	// Logger receives connection events; nil discards them.
	Logger *slog.Logger
	// Ready, if set, is called when the reader first powers the card on
	// after a connection: pcscd has seen the card, clients can connect.
	Ready func()
}

// Serve connects card to vpcd at addr (vpcd listens; the card is its TCP
// client) and answers the reader until ctx is done. It keeps retrying while
// vpcd is not up and reconnects when the connection drops, powering the card
// off in between. It returns ctx.Err() when ctx is done.
//
// Framing both ways is a 2-byte big-endian length and the payload. A 1-byte
// payload is a control byte (00 power off, 01 power on, 02 reset, 04 get
// ATR, the only one answered); a longer one is a command APDU, answered with
// the response APDU.
func Serve(ctx context.Context, addr string, card *Card, opts ServeOptions) error {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	retry := opts.Retry
	if retry <= 0 {
		retry = 200 * time.Millisecond
	}
	var d net.Dialer
	waiting := false
	for {
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !waiting {
				log.Info("waiting for vpcd", "addr", addr, "err", err)
				waiting = true
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(retry):
			}
			continue
		}
		waiting = false
		tcp := conn.(*net.TCPConn)
		quick := setQuickAck(tcp) == nil
		log.Info("connected to vpcd", "addr", addr, "quickack", quick, "serial", card.Serial())
		err = serveConn(ctx, tcp, card, opts.Ready)
		card.PowerOff()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		log.Info("vpcd connection closed; reconnecting", "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(retry):
		}
	}
}

// serveConn answers one vpcd connection until it fails or ctx is done.
func serveConn(ctx context.Context, conn *net.TCPConn, card *Card, ready func()) error {
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	var hdr [2]byte
	buf := make([]byte, 0, 1<<16)
	for {
		setQuickAck(conn)
		if _, err := io.ReadFull(conn, hdr[:]); err != nil {
			return err
		}
		n := int(binary.BigEndian.Uint16(hdr[:]))
		buf = buf[:n]
		setQuickAck(conn)
		if _, err := io.ReadFull(conn, buf); err != nil {
			return fmt.Errorf("reading %d-byte payload: %w", n, err)
		}
		var reply []byte
		switch {
		case n == 0:
			continue
		case n == 1:
			switch buf[0] {
			case ctrlPowerOff:
				card.PowerOff()
			case ctrlPowerOn:
				card.PowerOn()
				if ready != nil {
					ready()
					ready = nil
				}
			case ctrlReset:
				card.Reset()
			case ctrlATR:
				reply = card.ATR()
			}
			if reply == nil {
				continue
			}
		default:
			reply = card.Transmit(buf)
		}
		if len(reply) > 0xffff {
			return errors.New("response longer than 65535 bytes")
		}
		out := make([]byte, 2+len(reply))
		binary.BigEndian.PutUint16(out, uint16(len(reply)))
		copy(out[2:], reply)
		if _, err := conn.Write(out); err != nil {
			return err
		}
	}
}
