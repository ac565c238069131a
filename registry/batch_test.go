package registry

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/auths-dev/auths-agent/internal/attesttest"
	"github.com/auths-dev/auths-agent/kel"
)

// newIDRegistry returns a registry holding one identity with an
// inception and one interaction.
func newIDRegistry(t *testing.T) (string, *Registry, *testID) {
	t.Helper()
	dir := newGitRepo(t, false)
	r := openTest(t, dir)
	id, icp, err := newTestID("batch-test")
	if err != nil {
		t.Fatal(err)
	}
	ixn, err := id.ixn(kel.DigestSeal(kel.Digest([]byte("x"))))
	if err != nil {
		t.Fatal(err)
	}
	var b Batch
	b.Append(icp)
	b.Append(ixn)
	if _, err := r.Commit(bg(), &b); err != nil {
		t.Fatal(err)
	}
	return dir, r, id
}

func TestBatchRefused(t *testing.T) {
	dir, r, id := newIDRegistry(t)
	head, _ := r.Head()

	fake := func(mut func(st *kel.KeyState)) kel.SignedEvent {
		st := id.st.Clone()
		mut(st)
		e, err := kel.NewInteraction(st, nil)
		if err != nil {
			t.Fatal(err)
		}
		return sign(id.key, 0, e)
	}
	good, err := kel.NewInteraction(id.st, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The same event with another SAID written into d.
	other := kel.Digest([]byte("other"))
	badRaw := bytes.Replace(good.Raw(), []byte(good.SAID), []byte(other), 1)
	badSAID, err := kel.ParseEvent(badRaw)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := kel.NewInteraction(&kel.KeyState{Prefix: id.st.Prefix, Sequence: 0, LastEventSAID: id.st.Prefix, CurrentKeys: id.st.CurrentKeys, Threshold: id.st.Threshold}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := r.Snapshot()
	events, _ := s.KEL(id.st.Prefix)

	tests := []struct {
		name string
		se   kel.SignedEvent
		want error
	}{
		{"bad signature", sign(seedKey("intruder"), 0, good), kel.ErrBadSignature},
		{"no signature", kel.SignedEvent{Event: good}, kel.ErrThreshold},
		{"wrong p", fake(func(st *kel.KeyState) { st.LastEventSAID = other }), kel.ErrOutOfOrder},
		{"gap in s", fake(func(st *kel.KeyState) { st.Sequence++ }), kel.ErrOutOfOrder},
		{"duplicate s, same event", events[1], ErrDuplicate},
		{"duplicate s, other event", sign(id.key, 0, stored), ErrConflict},
		{"SAID mismatch", sign(id.key, 0, badSAID), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b Batch
			b.StoreAttestation("did:key:z6MkBatchRefused", attestationDoc(id.st.Prefix, "did:key:z6MkBatchRefused", "rid-0001"))
			b.Append(tc.se)
			_, err := r.Commit(bg(), &b)
			var oe *OpError
			if !errors.As(err, &oe) || oe.Index != 1 {
				t.Fatalf("Commit = %v, want an *OpError for operation 1", err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("Commit = %v, want %v", err, tc.want)
			}
			t.Logf("refused: %v", err)
			if h, _ := r.Head(); h != head {
				t.Errorf("ref moved to %s", h)
			}
		})
	}
	if n := len(commitLog(t, dir)); n != 1 {
		t.Errorf("%d commits, want 1", n)
	}
	fsck(t, dir)
}

func TestBatchInBatchChain(t *testing.T) {
	dir, r, id := newIDRegistry(t)
	var b Batch
	for i := 0; i < 5; i++ {
		se, err := id.ixn()
		if err != nil {
			t.Fatal(err)
		}
		b.Append(se)
	}
	// A second identity in the same batch.
	id2, icp2, _ := newTestID("second")
	b.Append(icp2)
	if _, err := r.Commit(bg(), &b); err != nil {
		t.Fatal(err)
	}
	s, _ := r.Snapshot()
	tip, _ := s.Tip(id.st.Prefix)
	if tip.Sequence != 6 {
		t.Errorf("tip s=%d, want 6", tip.Sequence)
	}
	if _, err := s.Verify(id2.st.Prefix); err != nil {
		t.Error(err)
	}
	m, _ := s.Metadata()
	if m.IdentityCount != 2 {
		t.Errorf("identity_count %d, want 2", m.IdentityCount)
	}
	if n := len(commitLog(t, dir)); n != 2 {
		t.Errorf("%d commits, want 2", n)
	}
	fsck(t, dir)
}

func TestAttestations(t *testing.T) {
	dir, r, id := newIDRegistry(t)
	did := "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
	dev := attesttest.NewDevice(did)
	ts := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	att1 := dev.Attestation(id.st.Prefix, did, "rid-aaaaaaaaaa-0001", ts, false)
	// Given in auths' legacy form: stored as auths serializes it and sealed
	// under the SAID of that form.
	legacy := attesttest.Legacy(att1)
	said1, _ := att1.SAID()
	if s, _ := kel.AttestationSAID(legacy); s != said1 {
		t.Fatalf("legacy form SAID %s, stored form %s", s, said1)
	}
	ixn, _ := id.ixn(kel.DigestSeal(said1))
	var b Batch
	b.Append(ixn)
	b.StoreAttestation(did, legacy)
	if _, err := r.Commit(bg(), &b); err != nil {
		t.Fatal(err)
	}
	// The same clock would name the same history copy: move it on.
	r2 := openTest(t, dir, WithClock(func() time.Time { return fixedClock()().Add(1500 * time.Millisecond) }))
	att2 := dev.Attestation(id.st.Prefix, did, "rid-bbbbbbbbbb-0002", ts.Add(time.Hour), true)
	said2, _ := att2.SAID()
	ixn, _ = id.ixn(kel.DigestSeal(said2))
	b = Batch{}
	b.SupersedeAttestation(did, att2.Pretty())
	b.Append(ixn)
	if _, err := r2.Commit(bg(), &b); err != nil {
		t.Fatal(err)
	}
	s, _ := r.Snapshot()
	got, err := s.Attestation(did)
	if err != nil || !bytes.Equal(got, att2.Pretty()) {
		t.Errorf("Attestation = %s, %v", got, err)
	}
	hist, _ := s.AttestationHistory(did)
	want := []string{"20250102T030405.678_rid-aaaaaaaaaa-0001.json", "20250102T030407.178_rid-bbbbbbbbbb-0002.json"}
	if strings.Join(hist, ",") != strings.Join(want, ",") {
		t.Errorf("history %v, want %v", hist, want)
	}
	devDir := "v1/devices/z6/Mk/did_key_z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK/"
	for p, want := range map[string][]byte{
		devDir + "attestation.json": att2.Pretty(), devDir + "history/" + want[0]: att1.Pretty(), devDir + "history/" + want[1]: att2.Pretty(),
	} {
		if got := runGitShow(t, dir, p); got != string(want) {
			t.Errorf("%s:\n%s\nwant\n%s", p, got, want)
		}
	}
	m, _ := s.Metadata()
	if m.DeviceCount != 1 {
		t.Errorf("device_count %d, want 1", m.DeviceCount)
	}
	fsck(t, dir)
}

// TestAttestationsRefused: a batch with an attestation auths could not
// load, that its device did not sign, or that no event of its issuer in
// the batch anchors, writes nothing (issue 9 item 5: before, attestation-
// only batches committed with no signature at all).
func TestAttestationsRefused(t *testing.T) {
	dir, r, id := newIDRegistry(t)
	head, _ := r.Head()
	other, otherICP, _ := newTestID("another identity")
	did := "did:key:z6MkRefused"
	dev := attesttest.NewDevice(did)
	ts := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	good := dev.Attestation(id.st.Prefix, did, "rid-1", ts, false)
	badSig := dev.Attestation(id.st.Prefix, did, "rid-1", ts, false)
	badSig.DeviceSignature[0] ^= 1
	withIDSig := dev.Attestation(id.st.Prefix, did, "rid-1", ts, false)
	withIDSig.IdentitySignature = make([]byte, 64)
	withIDSig.IdentitySignature[0] = 1
	dev.Sign(withIDSig)
	seal := func(a *kel.Attestation) json.RawMessage {
		s, _ := a.SAID()
		return kel.DigestSeal(s)
	}
	tests := []struct {
		name  string
		build func(b *Batch)
		want  string
	}{
		{"unanchored", func(b *Batch) { b.StoreAttestation(did, good.Pretty()) }, "no event of"},
		{"anchored by another event's seal", func(b *Batch) {
			se, _ := id.clone().ixn(kel.DigestSeal(kel.Digest([]byte("x"))))
			b.Append(se)
			b.StoreAttestation(did, good.Pretty())
		}, "no event of"},
		{"anchored by another identity", func(b *Batch) {
			se, _ := other.clone().ixn(seal(good))
			b.Append(otherICP)
			b.Append(se)
			b.StoreAttestation(did, good.Pretty())
		}, "no event of"},
		{"bad device signature", func(b *Batch) {
			se, _ := id.clone().ixn(seal(badSig))
			b.Append(se)
			b.StoreAttestation(did, badSig.Pretty())
		}, `"device_signature": does not verify`},
		{"bad identity signature", func(b *Batch) {
			se, _ := id.clone().ixn(seal(withIDSig))
			b.Append(se)
			b.StoreAttestation(did, withIDSig.Pretty())
		}, `"identity_signature": does not verify`},
		{"wrong subject", func(b *Batch) {
			se, _ := id.clone().ixn(seal(good))
			b.Append(se)
			b.StoreAttestation("did:key:z6MkSomeoneElse", good.Pretty())
		}, "subject is did:key:z6MkRefused"},
		{"missing field", func(b *Batch) {
			b.StoreAttestation(did, bytes.Replace(good.Pretty(), []byte(`"rid"`), []byte(`"rim"`), 1))
		}, `field "rid": missing`},
		{"not JSON", func(b *Batch) { b.StoreAttestation(did, []byte("[1]")) }, "not a JSON object"},
		{"rid not a file name", func(b *Batch) {
			a := dev.Attestation(id.st.Prefix, did, "../../x", ts, false)
			se, _ := id.clone().ixn(seal(a))
			b.Append(se)
			b.StoreAttestation(did, a.Pretty())
		}, "cannot name a history file"},
		{"supersede without a current one", func(b *Batch) {
			se, _ := id.clone().ixn(seal(good))
			b.Append(se)
			b.SupersedeAttestation(did, good.Pretty())
		}, "no attestation to supersede"},
		{"bad device DID", func(b *Batch) { b.StoreAttestation("did:key:z6/../x", good.Pretty()) }, "subject"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b Batch
			tc.build(&b)
			_, err := r.Commit(bg(), &b)
			var oe *OpError
			if !errors.As(err, &oe) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("Commit = %v, want an *OpError saying %q", err, tc.want)
			}
			if h, _ := r.Head(); h != head {
				t.Errorf("ref moved to %s", h)
			}
		})
	}
	// The good one, anchored, goes through.
	se, _ := id.ixn(seal(good))
	var b Batch
	b.StoreAttestation(did, good.Pretty())
	b.Append(se)
	if _, err := r.Commit(bg(), &b); err != nil {
		t.Fatal(err)
	}
	fsck(t, dir)
}

func TestInitTwiceAndForeignRefs(t *testing.T) {
	dir := newGitRepo(t, false)
	runGit(t, dir, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "user work")
	before := runGit(t, dir, "for-each-ref")
	r, created, err := Init(bg(), dir, false, WithClock(fixedClock()))
	if err != nil || !created {
		t.Fatalf("Init = %v, %v", created, err)
	}
	if _, created, err := Init(bg(), dir, false, WithClock(fixedClock())); err != nil || created {
		t.Fatalf("second Init = %v, %v", created, err)
	}
	after := runGit(t, dir, "for-each-ref")
	head, _ := r.Head()
	if want := head + " commit\t" + RegistryRef + "\n" + before; after != want {
		t.Errorf("refs after init:\n%s\nwant\n%s", after, want)
	}
	files := runGit(t, dir, "ls-tree", "-r", RegistryRef)
	if !strings.HasSuffix(strings.TrimSpace(files), "\tv1/metadata.json") || strings.Count(files, "\n") != 1 {
		t.Errorf("initial tree:\n%s", files)
	}
	meta := runGit(t, dir, "show", RegistryRef+":v1/metadata.json")
	if !strings.Contains(meta, `"identity_count": 0`) {
		t.Errorf("metadata %s", meta)
	}
	fsck(t, dir)
}

// TestThresholdFormsRefused: events whose thresholds auths cannot read, or
// reads with another meaning, never enter the registry; the error names the
// field and says why (before, the registry stored them: a multi-clause
// identity that auths then rejected).
func TestThresholdFormsRefused(t *testing.T) {
	dir := newGitRepo(t, false)
	r := openTest(t, dir)
	keys := []ed25519.PrivateKey{seedKey("mc/0"), seedKey("mc/1"), seedKey("mc/2")}
	var qb []string
	for _, k := range keys {
		qb = append(qb, keyQB64(k))
	}
	multi, err := kel.WeightedThreshold([][]string{{"1/2", "1/2"}, {"1/1"}})
	if err != nil {
		t.Fatal(err)
	}
	one, _ := kel.WeightedThreshold([][]string{{"1/2", "1/2", "1/1"}})
	var next []string
	for i := range keys {
		next = append(next, kel.NextKeyDigest(keyQB64(seedKey(fmt.Sprint("mc/n", i)))))
	}
	for _, tc := range []struct {
		name   string
		kt, nt kel.Threshold
		want   string
	}{
		{"multi-clause kt", multi, kel.SimpleThreshold(1), `field "kt": not in a form auths reads alike: 2 weighted clauses: auths applies every clause to the whole key list, keripy splits the list between them`},
		{"multi-clause nt", one, multi, `field "nt": not in a form auths reads alike: 2 weighted clauses`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := kel.NewInception(kel.InceptionSpec{Keys: qb, Threshold: tc.kt, NextDigests: next, NextThreshold: tc.nt})
			if err != nil {
				t.Fatal(err)
			}
			se := kel.SignedEvent{Event: e}
			for i, k := range keys {
				se.Sigs = append(se.Sigs, kel.NewSiger(kel.Ed25519, i, i, ed25519.Sign(k, e.Raw())))
			}
			if _, err := kel.Apply(nil, se); err != nil {
				t.Fatalf("keripy semantics refuse the event itself: %v", err)
			}
			var b Batch
			b.Append(se)
			_, err = r.Commit(bg(), &b)
			if !errors.Is(err, kel.ErrNotAuthsForm) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Commit = %v, want %q", err, tc.want)
			}
			if _, err := r.Head(); !errors.Is(err, ErrNoRegistry) && err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestInitialCommitShape: a registry we initialize starts as auths' own
// does (RegistryMetadata::empty): only v1/metadata.json, zero counts,
// updated_at at the Unix epoch; later commits write updated_at as chrono
// does (UTC, Z, 0/3/6/9 fractional digits).
func TestInitialCommitShape(t *testing.T) {
	dir := newGitRepo(t, true)
	if _, _, err := Init(bg(), dir, true, WithClock(fixedClock())); err != nil {
		t.Fatal(err)
	}
	if got := runGit(t, dir, "ls-tree", "-r", "--name-only", RegistryRef); got != "v1/metadata.json\n" {
		t.Errorf("initial tree:\n%s", got)
	}
	want := "{\n  \"version\": 1,\n  \"identity_count\": 0,\n  \"device_count\": 0,\n  \"member_count\": 0,\n  \"updated_at\": \"1970-01-01T00:00:00Z\"\n}"
	if got := runGitShow(t, dir, "v1/metadata.json"); got != want {
		t.Errorf("initial metadata.json:\n%s\nwant\n%s", got, want)
	}
	r := openTest(t, dir, WithClock(func() time.Time { return time.Date(2026, 2, 3, 4, 5, 6, 700_000, time.UTC) }))
	var b Batch
	attestBatch(&b, "did:key:z6MkShape", "rid-shape")
	if _, err := r.Commit(bg(), &b); err != nil {
		t.Fatal(err)
	}
	if got := runGitShow(t, dir, "v1/metadata.json"); !strings.Contains(got, `"updated_at": "2026-02-03T04:05:06.000700Z"`) {
		t.Errorf("metadata.json after a commit:\n%s", got)
	}
}
