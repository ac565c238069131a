// Command keldemo writes a small 2-of-3 KEL signed with keys made in memory:
// an inception, a rotation to the pre-committed next keys, and an
// interaction. It is the in-memory part of `make demo` and needs no token.
package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"

	"github.com/auths-dev/auths-agent/kel"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: keldemo OUT.cesr")
		os.Exit(2)
	}
	stream, err := build()
	if err != nil {
		fmt.Fprintln(os.Stderr, "keldemo:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(os.Args[1], stream, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "keldemo:", err)
		os.Exit(1)
	}
}

type keyset struct {
	priv []ed25519.PrivateKey
	pub  []string
}

func newKeys(n int) (keyset, error) {
	var ks keyset
	for i := 0; i < n; i++ {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return ks, err
		}
		v, err := kel.VerferFromPublicKey(pub)
		if err != nil {
			return ks, err
		}
		ks.priv = append(ks.priv, priv)
		ks.pub = append(ks.pub, v.QB64())
	}
	return ks, nil
}

func (ks keyset) digests() []string {
	var d []string
	for _, k := range ks.pub {
		d = append(d, kel.NextKeyDigest(k))
	}
	return d
}

// sign signs e with the keys at the given indexes.
func (ks keyset) sign(e *kel.Event, idx ...int) kel.SignedEvent {
	se := kel.SignedEvent{Event: e}
	for _, i := range idx {
		se.Sigs = append(se.Sigs, kel.NewSiger(kel.Ed25519, i, i, ed25519.Sign(ks.priv[i], e.Raw())))
	}
	return se
}

func build() ([]byte, error) {
	cur, err := newKeys(3)
	if err != nil {
		return nil, err
	}
	next, err := newKeys(3)
	if err != nil {
		return nil, err
	}
	after, err := newKeys(3)
	if err != nil {
		return nil, err
	}
	two := kel.SimpleThreshold(2)
	icp, err := kel.NewInception(kel.InceptionSpec{Keys: cur.pub, Threshold: two, NextDigests: next.digests(), NextThreshold: two})
	if err != nil {
		return nil, err
	}
	events := []kel.SignedEvent{cur.sign(icp, 0, 1)}
	st, err := kel.Apply(nil, events[0])
	if err != nil {
		return nil, err
	}
	rot, err := kel.NewRotation(st, kel.RotationSpec{Keys: next.pub, Threshold: two, NextDigests: after.digests(), NextThreshold: two})
	if err != nil {
		return nil, err
	}
	events = append(events, next.sign(rot, 1, 2))
	if st, err = kel.Apply(st, events[1]); err != nil {
		return nil, err
	}
	ixn, err := kel.NewInteraction(st, []json.RawMessage{kel.DigestSeal(kel.Digest([]byte("demo")))})
	if err != nil {
		return nil, err
	}
	events = append(events, next.sign(ixn, 0, 2))
	if _, err := kel.Apply(st, events[2]); err != nil {
		return nil, err
	}
	return kel.EncodeStream(events)
}
