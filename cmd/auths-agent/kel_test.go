package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/auths-dev/auths-agent/kel"
)

// runCLI runs the CLI in-process and returns its status, stdout and stderr.
func runCLI(t *testing.T, stdin []byte, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := &cliEnv{stdin: bytes.NewReader(stdin), stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	code := run(context.Background(), env, append([]string{"auths-agent"}, args...))
	return code, out.String(), errb.String()
}

// softKey is a software controller key for tests.
type softKey struct {
	ed  ed25519.PrivateKey
	ec  *ecdsa.PrivateKey
	pub string
}

func newSoftKey(t *testing.T, p256 bool) softKey {
	t.Helper()
	var k softKey
	var pub any
	if p256 {
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		k.ec, pub = priv, &priv.PublicKey
	} else {
		p, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		k.ed, pub = priv, p
	}
	v, err := kel.VerferFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	k.pub = v.QB64()
	return k
}

func (k softKey) siger(t *testing.T, e *kel.Event, index, ondex int) kel.Siger {
	t.Helper()
	if k.ed != nil {
		return kel.NewSiger(kel.Ed25519, index, ondex, ed25519.Sign(k.ed, e.Raw()))
	}
	h := sha256.Sum256(e.Raw())
	r, s, err := ecdsa.Sign(rand.Reader, k.ec, h[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return kel.NewSiger(kel.P256, index, ondex, sig)
}

func keysOf(ks ...softKey) (pubs, digests []string) {
	for _, k := range ks {
		pubs = append(pubs, k.pub)
		digests = append(digests, kel.NextKeyDigest(k.pub))
	}
	return pubs, digests
}

// TestKelSaidAgrees builds events of every kind with the kel builders and
// checks that `kel said` prints their SAIDs, compact and pretty-printed, and
// that `kel verify --json` prints the state Replay computes.
func TestKelSaidAgrees(t *testing.T) {
	weighted, err := kel.WeightedThreshold([][]string{{"1/2", "1/2"}, {"1"}})
	if err != nil {
		t.Fatal(err)
	}
	cur := []softKey{newSoftKey(t, false), newSoftKey(t, true), newSoftKey(t, false)}
	nxt := []softKey{newSoftKey(t, true), newSoftKey(t, false)}
	k, _ := keysOf(cur...)
	_, n := keysOf(nxt...)
	icp, err := kel.NewInception(kel.InceptionSpec{Keys: k, Threshold: weighted, NextDigests: n, NextThreshold: kel.SimpleThreshold(2)})
	if err != nil {
		t.Fatal(err)
	}
	events := []kel.SignedEvent{{Event: icp, Sigs: []kel.Siger{cur[0].siger(t, icp, 0, 0), cur[1].siger(t, icp, 1, 1), cur[2].siger(t, icp, 2, 2)}}}
	st, err := kel.Apply(nil, events[0])
	if err != nil {
		t.Fatal(err)
	}
	ixn, err := kel.NewInteraction(st, []json.RawMessage{kel.DigestSeal("Eattestation<&>")})
	if err != nil {
		t.Fatal(err)
	}
	events = append(events, kel.SignedEvent{Event: ixn, Sigs: []kel.Siger{cur[0].siger(t, ixn, 0, 0), cur[1].siger(t, ixn, 1, 1), cur[2].siger(t, ixn, 2, 2)}})
	if st, err = kel.Apply(st, events[1]); err != nil {
		t.Fatal(err)
	}
	added := newSoftKey(t, true)
	rk, _ := keysOf(nxt[1], nxt[0], added)
	rot, err := kel.NewRotation(st, kel.RotationSpec{Keys: rk, Threshold: kel.SimpleThreshold(3), NextThreshold: kel.SimpleThreshold(0)})
	if err != nil {
		t.Fatal(err)
	}
	events = append(events, kel.SignedEvent{Event: rot, Sigs: []kel.Siger{nxt[1].siger(t, rot, 0, 1), nxt[0].siger(t, rot, 1, 0), added.siger(t, rot, 2, kel.NoOndex)}})
	if st, err = kel.Apply(st, events[2]); err != nil {
		t.Fatal(err)
	}
	basicKey := newSoftKey(t, false)
	basic, err := kel.NewInception(kel.InceptionSpec{Keys: []string{basicKey.pub}, Threshold: kel.SimpleThreshold(1), NextThreshold: kel.SimpleThreshold(0), Basic: true})
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	for _, e := range []*kel.Event{icp, ixn, rot, basic} {
		path := filepath.Join(dir, e.Type+".json")
		if err := os.WriteFile(path, e.Raw(), 0o644); err != nil {
			t.Fatal(err)
		}
		code, out, errs := runCLI(t, nil, "kel", "said", path)
		if code != 0 || out != e.SAID+"\n" || errs != "" {
			t.Errorf("kel said %s: %d %q %q, want %s", e.Type, code, out, errs, e.SAID)
		}
		var pretty bytes.Buffer
		if err := json.Indent(&pretty, e.Raw(), "", "  "); err != nil {
			t.Fatal(err)
		}
		code, out, _ = runCLI(t, append(pretty.Bytes(), '\n'), "kel", "said", "-")
		if code != 0 || out != e.SAID+"\n" {
			t.Errorf("kel said of pretty-printed %s: %d %q", e.Type, code, out)
		}
	}
	if !bytes.Contains(ixn.Raw(), []byte("<&>")) {
		t.Errorf("HTML characters escaped in a seal: %s", ixn.Raw())
	}

	stream, err := kel.EncodeStream(events)
	if err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI(t, stream, "kel", "verify", "--json", "-")
	if code != 0 {
		t.Fatalf("kel verify: %d %s", code, errs)
	}
	var got kel.KeyState
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("kel verify --json output: %v\n%s", err, out)
	}
	if !reflect.DeepEqual(&got, st) {
		t.Errorf("kel verify --json state:\n%+v\nwant\n%+v", got, st)
	}
	code, out, _ = runCLI(t, stream, "kel", "verify", "-")
	if code != 0 || !strings.Contains(out, "sn         2\n") || !strings.Contains(out, "threshold  3\n") || !strings.Contains(out, "abandoned  yes") {
		t.Errorf("kel verify: %d\n%s", code, out)
	}
}
