//go:build vpiv

package anchor_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	gopiv "github.com/go-piv/piv-go/v2/piv"

	"github.com/auths-dev/auths-agent/hsm"
	"github.com/auths-dev/auths-agent/hsm/piv"
)

// restartCard restarts a virtual card of the rig with extra vpiv-card flags
// (here -latency), and as the rig made it when the benchmark ends.
func restartCard(b *testing.B, serial uint32, flags ...string) {
	b.Helper()
	ctl := func(flags ...string) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		args := append([]string{"restart", strconv.FormatUint(uint64(serial), 10)}, flags...)
		cmd := exec.CommandContext(ctx, filepath.Join(os.Getenv("VPIV_DIR"), "bin", "vpiv-card-ctl"), args...)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("vpiv-card-ctl %v: %v\n%s", args, err, out)
		}
	}
	b.Cleanup(func() { ctl() })
	ctl(flags...)
}

// BenchmarkPIVAnchor: three virtual PIV cards (P-256, through pcscd and
// vpcd) whose card process takes 50 ms per signature (vpiv-card -latency
// 50ms), so the latency is the device's own. See benchAnchor.
func BenchmarkPIVAnchor(b *testing.B) {
	ctx := context.Background()
	serials := pivSerials(b, 3)
	for _, s := range serials {
		restartCard(b, s, "-latency", deviceLatency.String())
	}
	p := piv.NewProvider(piv.Options{})
	b.Cleanup(func() { p.Close() }) // before the cards restart: cleanups run last first
	var cur, next []hsm.Signer
	for _, serial := range serials {
		for _, slot := range []string{"9c", "82"} {
			uri := fmt.Sprintf("piv:serial=%d;slot=%s?pin-value=%s", serial, slot, pivPIN)
			s, err := p.Generate(ctx, uri, piv.GenerateOptions{Algorithm: gopiv.AlgorithmEC256, Overwrite: true})
			if err != nil {
				b.Fatalf("generate %s: %v", hsm.RedactURI(uri), err)
			}
			if slot == "9c" {
				cur = append(cur, s)
			} else {
				next = append(next, s)
			}
		}
	}
	b.Run("piv-50ms", func(b *testing.B) { benchAnchor(b, cur, next, 0) })
}
