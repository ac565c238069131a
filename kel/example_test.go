package kel_test

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"log"

	"github.com/auths-dev/auths-agent/kel"
)

// A 2-of-3 identifier: build its inception and an interaction, sign each
// with two of the three keys, and verify the KEL. Building never signs: the
// signatures come from wherever the keys live (here, Go software keys).
func Example() {
	var privs []ed25519.PrivateKey
	var keys, next []string
	for i := range 6 {
		seed := make([]byte, ed25519.SeedSize)
		seed[0] = byte(i + 1)
		priv := ed25519.NewKeyFromSeed(seed)
		v, err := kel.VerferFromPublicKey(priv.Public())
		if err != nil {
			log.Fatal(err)
		}
		if i < 3 {
			privs = append(privs, priv)
			keys = append(keys, v.QB64())
		} else {
			next = append(next, kel.NextKeyDigest(v.QB64()))
		}
	}

	// Build the inception: three keys, two signatures needed, committing to
	// three next keys.
	icp, err := kel.NewInception(kel.InceptionSpec{
		Keys: keys, Threshold: kel.SimpleThreshold(2),
		NextDigests: next, NextThreshold: kel.SimpleThreshold(2),
	})
	if err != nil {
		log.Fatal(err)
	}
	// Sign the exact event bytes (never the SAID) with keys 0 and 2.
	sign := func(e *kel.Event, idx ...int) kel.SignedEvent {
		se := kel.SignedEvent{Event: e}
		for _, i := range idx {
			se.Sigs = append(se.Sigs, kel.NewSiger(kel.Ed25519, i, i, ed25519.Sign(privs[i], e.Raw())))
		}
		return se
	}
	events := []kel.SignedEvent{sign(icp, 0, 2)}
	st, err := kel.Apply(nil, events[0])
	if err != nil {
		log.Fatal(err)
	}

	// An interaction anchoring a digest seal, signed by keys 1 and 2.
	attestation := kel.Digest([]byte("a device attestation"))
	ixn, err := kel.NewInteraction(st, []json.RawMessage{kel.DigestSeal(attestation)})
	if err != nil {
		log.Fatal(err)
	}
	events = append(events, sign(ixn, 1, 2))

	// The KEL as a stream, as keripy writes it, parsed and replayed.
	stream, err := kel.EncodeStream(events)
	if err != nil {
		log.Fatal(err)
	}
	parsed, err := kel.ParseStream(stream)
	if err != nil {
		log.Fatal(err)
	}
	final, err := kel.Replay(parsed)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("prefix is the inception SAID:", final.Prefix == icp.SAID)
	fmt.Println("sequence:", final.Sequence)
	fmt.Println("threshold:", final.Threshold.Text(), "of", len(final.CurrentKeys))
	fmt.Println("attachment:", string(stream[len(icp.Raw()):len(icp.Raw())+6]))

	// One signature short of the threshold.
	_, err = kel.Apply(nil, sign(icp, 0))
	fmt.Println(err != nil)
	// Output:
	// prefix is the inception SAID: true
	// sequence: 1
	// threshold: 2 of 3
	// attachment: -AACAA
	// true
}
