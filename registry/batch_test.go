package registry

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

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
			b.StoreAttestation("did:key:z6MkBatchRefused", attestationDoc("did:key:z6MkBatchRefused", "rid-0001", ""))
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
	dir := newGitRepo(t, true)
	r := openTest(t, dir)
	did := "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
	doc1 := attestationDoc(did, "rid-aaaaaaaaaa", "")
	var b Batch
	b.StoreAttestation(did, doc1)
	if _, err := r.Commit(bg(), &b); err != nil {
		t.Fatal(err)
	}
	// The same clock would name the same history copy: move it on.
	r2 := openTest(t, dir, WithClock(func() time.Time { return fixedClock()().Add(1500 * time.Millisecond) }))
	doc2 := attestationDoc(did, "rid-bbbbbbbbbb", `,"revoked_at":"2025-01-02T03:04:07Z"`)
	b = Batch{}
	b.SupersedeAttestation(did, doc2)
	if _, err := r2.Commit(bg(), &b); err != nil {
		t.Fatal(err)
	}
	s, _ := r.Snapshot()
	got, err := s.Attestation(did)
	if err != nil || !bytes.Equal(got, doc2) {
		t.Errorf("Attestation = %s, %v", got, err)
	}
	hist, _ := s.AttestationHistory(did)
	want := []string{"20250102T030405.678_rid-aaaa.json", "20250102T030407.178_rid-bbbb.json"}
	if strings.Join(hist, ",") != strings.Join(want, ",") {
		t.Errorf("history %v, want %v", hist, want)
	}
	paths := runGit(t, dir, "ls-tree", "-r", "--name-only", RegistryRef)
	dev := "v1/devices/z6/Mk/did_key_z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK/"
	for _, p := range []string{dev + "attestation.json", dev + "history/" + want[0], dev + "history/" + want[1]} {
		if !strings.Contains(paths, p+"\n") {
			t.Errorf("missing %s in\n%s", p, paths)
		}
	}
	m, _ := s.Metadata()
	if m.DeviceCount != 1 {
		t.Errorf("device_count %d, want 1", m.DeviceCount)
	}
	// Superseding a device without an attestation, or a bad DID, is refused.
	for _, bad := range []func(*Batch){
		func(b *Batch) {
			b.SupersedeAttestation("did:key:z6MkNothingHere", attestationDoc("did:key:z6MkNothingHere", "r", ""))
		},
		func(b *Batch) { b.StoreAttestation("did:key:z6/../x", attestationDoc("x", "r", "")) },
		func(b *Batch) { b.StoreAttestation("did:key:z6MkOK", []byte(`[1]`)) },
		func(b *Batch) { b.StoreAttestation("did:key:z6MkOK", []byte(`{"rid":"../../x"}`)) },
	} {
		b = Batch{}
		bad(&b)
		if _, err := r2.Commit(bg(), &b); err == nil {
			t.Errorf("batch %+v committed", b.ops[0])
		}
	}
	if n := len(commitLog(t, dir)); n != 2 {
		t.Errorf("%d commits, want 2", n)
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
