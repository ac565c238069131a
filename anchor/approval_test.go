package anchor_test

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/auths-dev/auths-agent/anchor"
	"github.com/auths-dev/auths-agent/hsm"
	"github.com/auths-dev/auths-agent/kel"
)

// TestApproval: what a signature approves, for an interaction that
// anchors a seal and an attestation, and for a rotation, read back from
// escrow as `pending sign` reads it.
func TestApproval(t *testing.T) {
	ctx := context.Background()
	reg, _ := newRegistry(t)
	a := anchor.New(reg)
	prefix, _, _ := identity(t, a, "2", 3)
	did := "did:key:z6MkApproval"
	dg := kel.Digest([]byte("approved"))
	p, err := a.Stage(ctx, prefix, anchor.Change{
		Seals:        mustSeals(t, "i="+prefix+",s=0,d="+dg),
		Attestations: []anchor.Attestation{{Device: did, Document: attestation(prefix, did, 5)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Save(ctx, p); err != nil {
		t.Fatal(err)
	}
	pd, err := a.Load(ctx, prefix, p.SAID())
	if err != nil || pd.Err != nil {
		t.Fatalf("Load: %v %v", err, pd.Err)
	}
	att := p.Attestations()[0].SAID
	want := []string{
		"identity     " + prefix,
		"event        ixn s=1 (1) " + p.SAID() + ", follows " + prefix,
		"seal         i=" + prefix + ",s=0,d=" + dg,
		"seal         d=" + att + " (attestation of " + did + ")",
		"attestation  stores " + did + ": subject " + did + ", SAID " + att,
	}
	if got := pd.Proposal.Approval().Lines(); !reflect.DeepEqual(got, want) {
		t.Errorf("ixn approval:\n%q\nwant\n%q", got, want)
	}

	// A rotation approves its new keys and next-key commitment.
	var next []hsm.Signer
	var keys []string
	for i := 0; i < 2; i++ {
		n, _ := newKey(t, tokenLabels[i], kel.Ed25519)
		next = append(next, n)
		keys = append(keys, qb64(t, n))
	}
	spec := kel.RotationSpec{Keys: keys, Threshold: mustThreshold(t, "2"), NextThreshold: mustThreshold(t, "1"),
		NextDigests: []string{kel.Digest([]byte("n1")), kel.Digest([]byte("n2"))}}
	// The identity's next keys are unknown here: build a fresh identity
	// whose next keys are ours.
	cur := []hsm.Signer{}
	for i := 0; i < 2; i++ {
		s, _ := newKey(t, tokenLabels[i], kel.Ed25519)
		cur = append(cur, s)
	}
	rprefix := incept(t, a, cur, "2", next, "2")
	rot, err := a.Rotate(ctx, rprefix, spec)
	if err != nil {
		t.Fatal(err)
	}
	want = []string{
		"identity     " + rprefix,
		"event        rot s=1 (1) " + rot.SAID() + ", follows " + rprefix,
		"keys         " + keys[0] + ", " + keys[1] + " (kt 2)",
		"next keys    2 digests (nt 1)",
	}
	if got := rot.Approval().Lines(); !reflect.DeepEqual(got, want) {
		t.Errorf("rot approval:\n%q\nwant\n%q", got, want)
	}
}

// TestApprovalLines: sequence numbers in KERI hex with decimal beside,
// abandonment, seals of other shapes, supersedes, and text that is not
// printable ASCII quoted rather than sent to a terminal.
func TestApprovalLines(t *testing.T) {
	d := kel.Digest([]byte("x"))
	a := anchor.Approval{
		Prefix: "EPrefix", Type: kel.TypeRotation, Sn: 26, SAID: "ESaid", Prior: "EPrior",
		Keys: []string{"DKey"}, Threshold: kel.SimpleThreshold(1),
		Seals: []anchor.ApprovedSeal{
			{Text: "d=" + d},
		},
		Attestations: []anchor.ApprovedAttestation{
			{Device: "did:key:z6MkOld", SAID: d, Supersede: true},
			{Device: "did:key:z6MkNew", Subject: "did:key:z6MkNew\u202e\x1b[2J", SAID: d},
		},
	}
	want := []string{
		"identity     EPrefix",
		"event        rot s=1a (26) ESaid, follows EPrior",
		"keys         DKey (kt 1)",
		"next keys    none: nothing may follow this event",
		"seal         d=" + d,
		"attestation  supersedes did:key:z6MkOld: no subject, SAID " + d,
		`attestation  stores did:key:z6MkNew: subject "did:key:z6MkNew\u202e\x1b[2J", SAID ` + d,
	}
	if got := a.Lines(); !reflect.DeepEqual(got, want) {
		t.Errorf("Lines:\n%q\nwant\n%q", got, want)
	}

	// From a proposal: an inception, seals a person did not write in the
	// usual form, a subject with an escape sequence.
	ctx := context.Background()
	reg, _ := newRegistry(t)
	an := anchor.New(reg)
	s, _ := newKey(t, tokenLabels[0], kel.Ed25519)
	icp, err := an.Incept(ctx, kel.InceptionSpec{Keys: []string{qb64(t, s)}, Threshold: mustThreshold(t, "1"),
		NextThreshold: mustThreshold(t, "0"),
		Seals:         []json.RawMessage{json.RawMessage(`{"d":"` + d + `","x":"\u001b[2J"}`), kel.EventSeal("EFoo", 10, d)}})
	if err != nil {
		t.Fatal(err)
	}
	want = []string{
		"identity     " + icp.Prefix(),
		"event        icp s=0 (0) " + icp.SAID(),
		"keys         " + qb64(t, s) + " (kt 1)",
		"next keys    none: nothing may follow this event",
		`seal         {"d":"` + d + `","x":"\u001b[2J"}`,
		`seal         {"i":"EFoo","s":"a","d":"` + d + `"}`,
	}
	if got := icp.Approval().Lines(); !reflect.DeepEqual(got, want) {
		t.Errorf("icp approval:\n%q\nwant\n%q", got, want)
	}
}
