package anchor_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/auths-dev/auths-agent/anchor"
	"github.com/auths-dev/auths-agent/hsm"
	"github.com/auths-dev/auths-agent/kel"
	"github.com/auths-dev/auths-agent/registry"
)

// TestAtomicity: a batch whose attestation write fails (superseding the
// attestation of a device that has none, refused by the registry's batch)
// leaves neither the attestation nor the event.
func TestAtomicity(t *testing.T) {
	ctx := context.Background()
	reg, dir := newRegistry(t)
	a := anchor.New(reg)
	prefix, cur, _ := identity(t, a, "2", 3)
	head := git(t, dir, "rev-parse", registry.RegistryRef)
	good, bad := "did:key:z6MkGoodDevice", "did:key:z6MkNoSuchDevice"
	p, err := a.Stage(ctx, prefix, anchor.Change{Attestations: []anchor.Attestation{
		{Device: good, Document: attestation(prefix, good, 1)},
		{Device: bad, Document: revocation(prefix, bad, 2), Supersede: true},
	}})
	if err != nil {
		t.Fatal(err)
	}
	anchor.Sign(ctx, p, cur)
	_, err = a.Commit(ctx, p)
	var oe *registry.OpError
	if !errors.As(err, &oe) || oe.Index != 2 || !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("Commit: %v, want the registry refusing operation 2 (supersede)", err)
	}
	if got := git(t, dir, "rev-parse", registry.RegistryRef); got != head {
		t.Errorf("ref moved to %s", got)
	}
	snap, _ := reg.Snapshot()
	if tip, _ := snap.Tip(prefix); tip.Sequence != 0 {
		t.Errorf("tip s=%d, want 0: the event was written", tip.Sequence)
	}
	if _, err := snap.Attestation(good); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("attestation of %s: %v, want not found", good, err)
	}
	fsck(t, dir)
}

// TestBadInput: each refusal is clear and writes nothing.
func TestBadInput(t *testing.T) {
	ctx := context.Background()
	reg, dir := newRegistry(t)
	a := anchor.New(reg)
	prefix, cur, _ := identity(t, a, "2", 3)
	s1, _ := newKey(t, tokenLabels[0], kel.Ed25519)
	s2, _ := newKey(t, tokenLabels[1], kel.Ed25519)
	k1, k2 := qb64(t, s1), qb64(t, s2)
	badDev := "did:key:z6MkBadInputDevice"
	stageAtt := func(device string, doc []byte, supersede bool) error {
		_, err := a.Stage(ctx, prefix, anchor.Change{Attestations: []anchor.Attestation{{Device: device, Document: doc, Supersede: supersede}}})
		return err
	}

	// A non-transferable identity (no next keys) and an EO one.
	ntSpec := kel.InceptionSpec{Keys: []string{k1}, Threshold: kel.SimpleThreshold(1)}
	eoSpec := kel.InceptionSpec{Keys: []string{k2}, Threshold: kel.SimpleThreshold(1),
		NextDigests: []string{kel.NextKeyDigest(k1)}, NextThreshold: kel.SimpleThreshold(1), Config: []string{kel.TraitEstablishmentOnly}}
	var nt, eo string
	for _, x := range []struct {
		spec   kel.InceptionSpec
		signer hsm.Signer
		out    *string
	}{{ntSpec, s1, &nt}, {eoSpec, s2, &eo}} {
		p, err := a.Incept(ctx, x.spec)
		if err != nil {
			t.Fatal(err)
		}
		anchor.Sign(ctx, p, []hsm.Signer{x.signer})
		if _, err := a.Commit(ctx, p); err != nil {
			t.Fatal(err)
		}
		*x.out = p.Prefix()
	}
	head := git(t, dir, "rev-parse", registry.RegistryRef)
	digest := kel.Digest([]byte("x"))
	seal := anchor.Change{Seals: []json.RawMessage{kel.DigestSeal(digest)}}

	for _, tc := range []struct {
		name string
		run  func() error
		is   error
		want string
	}{
		{"unknown prefix", func() error {
			_, err := a.Stage(ctx, "EAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", seal)
			return err
		}, anchor.ErrUnknownIdentity, "unknown identity EAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA: the registry has no KEL for it"},
		{"non-transferable", func() error { _, err := a.Stage(ctx, nt, seal); return err },
			anchor.ErrNonTransferable, "identity " + nt + ": identity is non-transferable: nothing may follow its inception"},
		{"establishment-only", func() error { _, err := a.Stage(ctx, eo, seal); return err },
			anchor.ErrEstablishmentOnly, "identity " + eo + ": identity is establishment-only (EO): it cannot anchor with an interaction event"},
		{"malformed seal in a change", func() error {
			_, err := a.Stage(ctx, prefix, anchor.Change{Seals: []json.RawMessage{json.RawMessage(`{"d":"nope"}`)}})
			return err
		}, anchor.ErrBadSeal, "seal 0: malformed seal: d: "},
		{"event seal fields out of order", func() error {
			_, err := a.Stage(ctx, prefix, anchor.Change{Seals: []json.RawMessage{json.RawMessage(`{"s":"0","i":"` + prefix + `","d":"` + digest + `"}`)}})
			return err
		}, anchor.ErrBadSeal, "seal 0: malformed seal: want fields i, s, d in that order"},
		{"nothing to anchor", func() error { _, err := a.Stage(ctx, prefix, anchor.Change{}); return err },
			nil, "nothing to anchor"},
		{"threshold larger than the keys", func() error {
			_, err := a.Incept(ctx, kel.InceptionSpec{Keys: []string{k1, k2}, Threshold: kel.SimpleThreshold(3),
				NextDigests: []string{kel.NextKeyDigest(k1)}, NextThreshold: kel.SimpleThreshold(1)})
			return err
		}, nil, "threshold 3 is larger than the 2 keys"},
		{"key listed twice", func() error {
			_, err := a.Incept(ctx, kel.InceptionSpec{Keys: []string{k1, k1}, Threshold: kel.SimpleThreshold(1),
				NextDigests: []string{kel.NextKeyDigest(k2)}, NextThreshold: kel.SimpleThreshold(1)})
			return err
		}, nil, "listed twice"},
		{"signer not in the key list", func() error {
			p, err := a.Stage(ctx, prefix, seal)
			if err != nil {
				return err
			}
			_, err = anchor.Sign(ctx, p, []hsm.Signer{cur[0], s1})
			if p.Has(0) {
				t.Error("a signer signed although another was refused")
			}
			return err
		}, anchor.ErrSignerNotInKeys, "signer " + hsm.Describe(s1) + ": signer's key is not in the key list: key " + k1 + " is not a current key of " + prefix + " (index"},
		{"same signer twice", func() error {
			p, err := a.Stage(ctx, prefix, seal)
			if err != nil {
				return err
			}
			_, err = anchor.Sign(ctx, p, []hsm.Signer{cur[0], cur[0]})
			return err
		}, anchor.ErrDuplicateSigner, "key given twice"},
		{"bad attestation document", func() error {
			_, err := a.Stage(ctx, prefix, anchor.Change{Attestations: []anchor.Attestation{{Device: "did:key:z6MkX", Document: []byte("not json")}}})
			return err
		}, anchor.ErrBadAttestation, "attestation 0 (did:key:z6MkX): bad attestation: attestation: not JSON: expected value at byte 0"},
		{"bad device DID", func() error {
			_, err := a.Stage(ctx, prefix, anchor.Change{Attestations: []anchor.Attestation{{Device: "did:key:a/b", Document: []byte("{}")}}})
			return err
		}, anchor.ErrBadAttestation, "attestation 0 (did:key:a/b): bad attestation: device DID"},
		{"attestation missing a field", func() error {
			doc := strings.Replace(string(attestation(prefix, badDev, 1)), `"device_signature"`, `"device_sig"`, 1)
			return stageAtt(badDev, []byte(doc), false)
		}, anchor.ErrBadAttestation, `bad attestation: attestation: field "device_signature": missing (required)`},
		{"device DID with a line break", func() error {
			return stageAtt("did:key:z6Mk\nX", attestation(prefix, badDev, 1), false)
		}, anchor.ErrBadAttestation, `attestation 0 ("did:key:z6Mk\nX"): bad attestation: device: DID contains control characters`},
		{"attestation of another device", func() error {
			return stageAtt("did:key:z6MkOther", attestation(prefix, badDev, 1), false)
		}, anchor.ErrBadAttestation, "its subject is " + badDev + ", not the device did:key:z6MkOther"},
		{"attestation of another issuer", func() error {
			return stageAtt(badDev, attestation("EOtherIdentity", badDev, 1), false)
		}, anchor.ErrBadAttestation, "its issuer is did:keri:EOtherIdentity, not the anchoring identity did:keri:" + prefix},
		{"bad device signature", func() error {
			doc := attestation(prefix, badDev, 1)
			i := strings.Index(string(doc), `"device_signature":"`) + len(`"device_signature":"`)
			if doc[i] == '0' { // another hex digit
				doc[i] = '1'
			} else {
				doc[i] = '0'
			}
			return stageAtt(badDev, doc, false)
		}, anchor.ErrBadAttestation, `attestation: field "device_signature": does not verify with device_public_key`},
		{"revocation flag without revoked_at", func() error {
			return stageAtt(badDev, attestation(prefix, badDev, 1), true)
		}, anchor.ErrBadAttestation, "a revocation must set revoked_at"},
		{"revoked_at without the revocation flag", func() error {
			return stageAtt(badDev, revocation(prefix, badDev, 1), false)
		}, anchor.ErrBadAttestation, "it sets revoked_at: give it as a revocation"},
	} {
		err := tc.run()
		if err == nil || (tc.is != nil && !errors.Is(err, tc.is)) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v\nwant %v containing %q", tc.name, err, tc.is, tc.want)
		}
	}
	for _, bad := range []string{"", "d=", "d=nope", "x=1", "d=" + digest + ",d=" + digest, "s=0,d=" + digest,
		"i=" + prefix + ",s=01,d=" + digest, "i=" + prefix + ",s=A,d=" + digest, "i=zz,s=0,d=" + digest, `{"d":1}`, `{"d":"` + digest + `","x":1}`, "{"} {
		if _, err := anchor.ParseSeal(bad); !errors.Is(err, anchor.ErrBadSeal) {
			t.Errorf("ParseSeal(%q): %v, want ErrBadSeal", bad, err)
		}
	}
	if got := git(t, dir, "rev-parse", registry.RegistryRef); got != head {
		t.Errorf("ref moved")
	}
	if refs := git(t, dir, "for-each-ref", registry.PendingRefPrefix); refs != "" {
		t.Errorf("pending refs written: %s", refs)
	}
}
