//go:build vpiv

package anchor_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	gopiv "github.com/go-piv/piv-go/v2/piv"

	"github.com/auths-dev/auths-agent/anchor"
	"github.com/auths-dev/auths-agent/hsm"
	"github.com/auths-dev/auths-agent/hsm/piv"
	"github.com/auths-dev/auths-agent/kel"
	"github.com/auths-dev/auths-agent/softhsm-test/vpiv"
)

// These tests run inside the virtual PIV card rig (softhsm-test/vpiv-up,
// then softhsm-test/vpiv-exec go test -tags vpiv ./anchor/) with the card
// serials in VPIV_SERIALS.

const pivPIN = "123456"

func pivSerials(t testing.TB, want int) []uint32 {
	t.Helper()
	out, err := vpiv.Serials(want)
	if err != nil {
		t.Fatalf("%v: run softhsm-test/vpiv-up %d, then softhsm-test/vpiv-exec go test -tags vpiv ./anchor/ (make test does this)", err, want)
	}
	return out[:want]
}

// TestPIVAnchor: a 2-of-3 identity whose keys are on three virtual
// YubiKeys (P-256 in slot 9c, next keys in retired slots) anchors a device
// attestation with two cards signing at once, in one commit.
func TestPIVAnchor(t *testing.T) {
	ctx := context.Background()
	p := piv.NewProvider(piv.Options{})
	defer p.Close()
	var cur, next []hsm.Signer
	for _, serial := range pivSerials(t, 3) {
		for _, slot := range []string{"9c", "82"} {
			uri := fmt.Sprintf("piv:serial=%d;slot=%s?pin-value=%s", serial, slot, pivPIN)
			s, err := p.Generate(ctx, uri, piv.GenerateOptions{Algorithm: gopiv.AlgorithmEC256, Overwrite: true})
			if err != nil {
				t.Fatalf("generate %s: %v", hsm.RedactURI(uri), err)
			}
			if slot == "9c" {
				cur = append(cur, s)
			} else {
				next = append(next, s)
			}
		}
	}
	reg, dir := newRegistry(t)
	a := anchor.New(reg)
	prefix := incept(t, a, cur, "2", next, "2")
	did := "did:key:z6MkPIVDevice"
	pr, err := a.Stage(ctx, prefix, anchor.Change{Attestations: []anchor.Attestation{{Device: did, Document: attestation(prefix, did, 1)}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := anchor.Sign(ctx, pr, []hsm.Signer{cur[0], cur[2]}); err != nil {
		t.Fatal(err)
	}
	res, err := a.Commit(ctx, pr)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := sigPrefixes(t, res.Event.Sigs), "EA,EC"; got != want {
		t.Errorf("signatures %s, want %s", got, want)
	}
	snap, _ := reg.Snapshot()
	if _, err := snap.Verify(prefix); err != nil {
		t.Fatal(err)
	}
	if _, err := snap.Attestation(did); err != nil {
		t.Fatal(err)
	}
	if stat := git(t, dir, "show", "--stat", "--format=%s", res.Commit); !strings.Contains(stat, "attestation.json") || !strings.Contains(stat, "events/00000001.json") {
		t.Errorf("the commit lacks the attestation or the event:\n%s", stat)
	}
	fsck(t, dir)
	_ = kel.P256
}
