//go:build vpiv

package socket_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	gopiv "github.com/go-piv/piv-go/v2/piv"

	"github.com/auths-dev/auths-agent/agent"
	"github.com/auths-dev/auths-agent/hsm"
	"github.com/auths-dev/auths-agent/hsm/piv"
	"github.com/auths-dev/auths-agent/internal/attesttest"
	"github.com/auths-dev/auths-agent/kel"
	"github.com/auths-dev/auths-agent/socket"
	"github.com/auths-dev/auths-agent/softhsm-test/vpiv"
)

// These tests run inside the virtual PIV card rig (softhsm-test/vpiv-up,
// then softhsm-test/vpiv-exec go test -tags vpiv ./socket/) with the card
// serials in VPIV_SERIALS.

const pivPIN = "123456"

func pivSerials(t *testing.T, want int) []uint32 {
	t.Helper()
	out, err := vpiv.Serials(want)
	if err != nil {
		t.Fatalf("%v: run softhsm-test/vpiv-up %d, then softhsm-test/vpiv-exec go test -tags vpiv ./socket/ (make test does this)", err, want)
	}
	return out[:want]
}

// mixedOpener opens pkcs11: URIs with the test's PKCS#11 provider and piv:
// URIs with one PIV provider (a card is held by one provider at a time).
type mixedOpener struct{ piv *piv.Provider }

func (o mixedOpener) Open(ctx context.Context, uri string) (hsm.Signer, error) {
	if strings.HasPrefix(uri, "piv:") {
		return o.piv.Signer(ctx, uri)
	}
	return providerOpener{}.Open(ctx, uri)
}

// TestPIVAnchor: a 2-of-3 identity whose keys are on one SoftHSM token and
// two virtual YubiKeys anchors a device attestation through the socket:
// the agent signs with the three tokens at once and commits one commit.
func TestPIVAnchor(t *testing.T) {
	ctx := context.Background()
	p := piv.NewProvider(piv.Options{})
	defer p.Close()
	uris := []string{newKey(t, tokens[0], kel.Ed25519)}
	for _, serial := range pivSerials(t, 2) {
		uri := fmt.Sprintf("piv:serial=%d;slot=9c?pin-value=%s", serial, pivPIN)
		if _, err := p.Generate(ctx, uri, piv.GenerateOptions{Algorithm: gopiv.AlgorithmEC256, Overwrite: true}); err != nil {
			t.Fatalf("generate %s: %v", hsm.RedactURI(uri), err)
		}
		uris = append(uris, uri)
	}
	reg := newRegistry(t)
	o := mixedOpener{p}
	prefix := inceptWith(t, reg, o, "2", uris...)
	path := serveWith(t, agent.Config{Keys: keri(uris...)}, agent.Options{Opener: o, Registry: reg}, socket.Options{})
	c := dial(t, path)
	keys, err := c.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range keys {
		if len(k.Identities) != 1 || k.Identities[0].Prefix != prefix || k.Identities[0].Index != i {
			t.Errorf("key %s: identities %v, want %s index %d", k.URI, k.Identities, prefix, i)
		}
	}
	before := commits(t, reg.GitDir())
	did := "did:key:z6MkPIVThroughAgent"
	doc := attesttest.Doc(prefix, did, "piv00001")
	r, err := c.Anchor(ctx, socket.AnchorRequest{Prefix: prefix, Attestations: []socket.AttestationChange{{Device: did, Document: string(doc)}}})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Committed || r.Sn != 1 {
		t.Fatalf("anchor: %+v, want committed at s=1", r)
	}
	if got := commits(t, reg.GitDir()) - before; got != 1 {
		t.Errorf("%d commits, want 1", got)
	}
	snap, _ := reg.Snapshot()
	if _, err := snap.Verify(prefix); err != nil {
		t.Fatal(err)
	}
	se, err := snap.Event(prefix, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(se.Sigs) != 3 {
		t.Errorf("%d signatures on the event, want the three tokens'", len(se.Sigs))
	}
	if _, err := snap.Attestation(did); err != nil {
		t.Fatal(err)
	}
}

// cardCtl runs softhsm-test/vpiv-card-ctl ACTION SERIAL through the rig.
func cardCtl(t testing.TB, action string, serial uint32) {
	t.Helper()
	dir := os.Getenv("VPIV_DIR")
	if dir == "" {
		t.Fatal("VPIV_DIR is not set: run the tests through softhsm-test/vpiv-exec")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(dir, "bin", "vpiv-card-ctl"), action, strconv.FormatUint(uint64(serial), 10)).CombinedOutput()
	if err != nil {
		t.Fatalf("vpiv-card-ctl %s %d: %v\n%s", action, serial, err, out)
	}
}

// TestPIVReopen: the agent's card goes away; a request fails with the
// token named and nothing else breaks; once the card is back the next
// request opens it again and signs.
func TestPIVReopen(t *testing.T) {
	ctx := context.Background()
	p := piv.NewProvider(piv.Options{})
	defer p.Close()
	serial := pivSerials(t, 1)[0]
	uri := fmt.Sprintf("piv:serial=%d;slot=9a?pin-value=%s", serial, pivPIN)
	if _, err := p.Generate(ctx, uri, piv.GenerateOptions{Algorithm: gopiv.AlgorithmEd25519, Overwrite: true}); err != nil {
		t.Fatal(err)
	}
	reg := newRegistry(t)
	o := mixedOpener{p}
	prefix := inceptWith(t, reg, o, "1", uri)
	path := serveWith(t, agent.Config{Keys: keri(uri)}, agent.Options{Opener: o, Registry: reg}, socket.Options{})
	c := dial(t, path)
	// One event throughout: the agent signs one event per sequence number
	// of an identity, and the same one again.
	e := ixn(t, keyState(t, reg, prefix), "the event")
	if _, err := c.SignEvent(ctx, e.Raw()); err != nil {
		t.Fatal(err)
	}
	stopped := true
	t.Cleanup(func() {
		if stopped {
			cardCtl(t, "start", serial)
		}
	})
	cardCtl(t, "stop", serial)
	_, err := c.SignEvent(ctx, e.Raw())
	if err == nil || !strings.Contains(err.Error(), strconv.FormatUint(uint64(serial), 10)) {
		t.Fatalf("with the card away: %v, want an error naming card %d", err, serial)
	}
	cardCtl(t, "start", serial)
	stopped = false
	var r *socket.SignEventReply
	for i := 0; i < 20; i++ { // pcscd notices the reader again within a poll period
		if r, err = c.SignEvent(ctx, e.Raw()); err == nil {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if err != nil || len(r.Signatures) != 1 {
		t.Fatalf("after the card came back: %v", err)
	}
}
