//go:build vpiv

package piv

// The virtual card answers well; the fault this file needs (a short GET
// METADATA answer for key 9b, which makes piv-go v2.6 index past the end of
// a slice during management-key authentication) is one the real card cannot
// produce, so a small broken card stands in for one card of the rig, on its
// vpcd port, through the real pcscd.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/auths-dev/auths-agent/hsm"
	"github.com/go-piv/piv-go/v2/piv"
)

// brokenCardATR is a YubiKey 5's answer to reset.
var brokenCardATR = []byte{
	0x3b, 0xfd, 0x13, 0x00, 0x00, 0x81, 0x31, 0xfe, 0x15, 0x80, 0x73, 0xc0,
	0x21, 0xc0, 0x57, 0x59, 0x75, 0x62, 0x69, 0x4b, 0x65, 0x79, 0x40,
}

// serveBrokenCard answers vpcd on conn as a 5.7.1 card with the given
// serial whose GET METADATA for 9b is two bytes long.
func serveBrokenCard(conn net.Conn, serial uint32) {
	defer conn.Close()
	for {
		var hdr [2]byte
		if _, err := io.ReadFull(conn, hdr[:]); err != nil {
			return
		}
		msg := make([]byte, binary.BigEndian.Uint16(hdr[:]))
		if _, err := io.ReadFull(conn, msg); err != nil {
			return
		}
		var out []byte
		switch {
		case len(msg) == 1 && msg[0] == 0x04: // get ATR
			out = brokenCardATR
		case len(msg) == 1: // power off, on, reset: no reply
			continue
		case len(msg) >= 4 && msg[1] == 0xa4: // SELECT
			out = []byte{0x90, 0x00}
		case len(msg) >= 4 && msg[1] == 0xfd: // GET VERSION
			out = []byte{5, 7, 1, 0x90, 0x00}
		case len(msg) >= 4 && msg[1] == 0xf8: // GET SERIAL
			out = binary.BigEndian.AppendUint32(nil, serial)
			out = append(out, 0x90, 0x00)
		case len(msg) >= 4 && msg[1] == 0xf7 && msg[3] == 0x9b: // GET METADATA 9b: too short
			out = []byte{0x01, 0x01, 0x90, 0x00}
		case len(msg) >= 4 && msg[1] == 0xf7: // GET METADATA of a slot: empty
			out = []byte{0x6a, 0x82}
		default:
			out = []byte{0x6d, 0x00}
		}
		frame := binary.BigEndian.AppendUint16(nil, uint16(len(out)))
		if _, err := conn.Write(append(frame, out...)); err != nil {
			return
		}
	}
}

// TestPanicInPivGo: piv-go's panic on the broken card's answer becomes an
// error naming the card; the process goes on, and the card is reopened on
// the next call.
func TestPanicInPivGo(t *testing.T) {
	real := rigSerials(t, 2)[1]
	cmd, err := os.ReadFile(filepath.Join(rigDir(t), fmt.Sprintf("card-%d.cmd", real)))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`-addr '?([0-9.]+:[0-9]+)`).FindSubmatch(cmd)
	if m == nil {
		t.Fatalf("no -addr in card %d's command line %q", real, cmd)
	}
	addr := string(m[1])

	cardCtl(t, "stop", real)
	t.Cleanup(func() {
		time.Sleep(2 * time.Second) // vpcd needs a pause between card processes
		cardCtl(t, "start", real)
	})
	const serial = 10000099
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("connecting to vpcd at %s: %v", addr, err)
	}
	done := make(chan struct{})
	go func() { defer close(done); serveBrokenCard(conn, serial) }()
	defer func() { conn.Close(); <-done }()

	p := newTestProvider(t, Options{})
	ctx := context.Background()
	uri := uriOf(serial, "9a", "")
	var gerr error
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		// pcscd takes a moment to see the new card.
		_, gerr = p.Generate(ctx, uri, GenerateOptions{PINPolicy: piv.PINPolicyNever})
		if !errors.Is(gerr, hsm.ErrTokenAbsent) {
			break
		}
	}
	if !errors.Is(gerr, ErrCardPanic) {
		t.Fatalf("Generate on the broken card: %v; want ErrCardPanic", gerr)
	}
	if !strings.Contains(gerr.Error(), fmt.Sprintf("card %d: ", serial)) || strings.Contains(gerr.Error(), "\n") {
		t.Errorf("error %q: want one line naming card %d", gerr, serial)
	}
	t.Logf("broken card: %v", gerr)
	// The connection was dropped; the next call opens the card again and
	// gets the same clean error.
	if _, err := p.Generate(ctx, uri, GenerateOptions{PINPolicy: piv.PINPolicyNever}); !errors.Is(err, ErrCardPanic) {
		t.Errorf("second Generate: %v; want ErrCardPanic again", err)
	}
}
