package anchor_test

import (
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/auths-dev/auths-agent/anchor"
	"github.com/auths-dev/auths-agent/hsm"
	"github.com/auths-dev/auths-agent/internal/attesttest"
	"github.com/auths-dev/auths-agent/kel"
)

// TestAuthsShapeEndToEnd anchors an auths attestation, given in auths'
// legacy form, for a 2-of-3 identity whose keys are on three SoftHSM tokens,
// and checks every file the commit wrote against the shapes auths writes and
// reads (spec/registry.md, docs/PROTOCOL.md).
func TestAuthsShapeEndToEnd(t *testing.T) {
	ctx := context.Background()
	reg, dir := newRegistry(t)
	a := anchor.New(reg)
	prefix, cur, _ := identity(t, a, "2", 3)
	did := "did:key:z6MkShapeLaptop"
	ts := time.Date(2026, 7, 8, 9, 10, 11, 250_000_000, time.UTC)
	att := attesttest.NewDevice(did).Attestation(prefix, did, "laptop-rid-0123456789abcdef", ts, false)
	legacy := attesttest.Legacy(att)
	said, err := att.SAID()
	if err != nil {
		t.Fatal(err)
	}
	p, err := a.Stage(ctx, prefix, anchor.Change{Attestations: []anchor.Attestation{{Device: did, Document: legacy}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := anchor.Sign(ctx, p, []hsm.Signer{cur[0], cur[2]}); err != nil {
		t.Fatal(err)
	}
	res, err := a.Commit(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	files := strings.Fields(git(t, dir, "diff-tree", "--no-commit-id", "--name-only", "-r", res.Parent, res.Commit))
	id := "v1/identities/" + prefix[0:2] + "/" + prefix[2:4] + "/" + prefix + "/"
	dev := "v1/devices/z6/Mk/did_key_z6MkShapeLaptop/"
	histRE := regexp.MustCompile(`^` + regexp.QuoteMeta(dev) + `history/\d{8}T\d{6}\.\d{3}_laptop-rid-0123456789abcdef\.json$`)
	var hist string
	for _, f := range files {
		if histRE.MatchString(f) {
			hist = f
		}
	}
	want := []string{dev + "attestation.json", hist, id + "events/00000001.attachments.cesr", id + "events/00000001.json",
		id + "state.json", id + "tip.json", "v1/metadata.json"}
	slices.Sort(want)
	if hist == "" || strings.Join(files, "\n") != strings.Join(want, "\n") {
		t.Fatalf("the commit wrote\n%s\nwant\n%s", strings.Join(files, "\n"), strings.Join(want, "\n"))
	}
	show := func(path string) string { return git(t, dir, "show", res.Commit+":"+path) }

	// attestation.json and the history copy: auths' pretty serialization,
	// which auths parses back, under the SAID the event seals.
	for _, f := range []string{dev + "attestation.json", hist} {
		got := show(f)
		if got != string(att.Pretty()) {
			t.Errorf("%s:\n%s\nwant\n%s", f, got, att.Pretty())
		}
		back, err := kel.ParseAttestation([]byte(got))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if s, _ := back.SAID(); s != said {
			t.Errorf("%s: SAID %s, want %s", f, s, said)
		}
		if err := back.VerifyDevice(); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	if !strings.Contains(show(dev+"attestation.json"), `"device_public_key": {`+"\n"+`    "curve": "ed25519",`) ||
		!strings.Contains(show(dev+"attestation.json"), `"timestamp": "2026-07-08T09:10:11.250Z"`) {
		t.Errorf("attestation.json is not in auths' form:\n%s", show(dev+"attestation.json"))
	}

	// The event: pretty JSON of the signed bytes, sealing the SAID.
	var compact bytes.Buffer
	if err := json.Compact(&compact, []byte(show(id+"events/00000001.json"))); err != nil {
		t.Fatal(err)
	}
	ev, err := kel.ParseEvent(compact.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if ev.SAID != p.SAID() || ev.Type != kel.TypeInteraction || len(ev.Seals) != 1 || string(ev.Seals[0]) != string(kel.DigestSeal(said)) {
		t.Errorf("event %s %s seals %s, want ixn %s sealing %s", ev.Type, ev.SAID, ev.Seals, p.SAID(), said)
	}
	sigs, n, err := kel.ParseSigGroup([]byte(show(id + "events/00000001.attachments.cesr")))
	if err != nil || n != len(show(id+"events/00000001.attachments.cesr")) || len(sigs) != 2 || sigs[0].Index != 0 || sigs[1].Index != 2 {
		t.Errorf("attachments: %d signatures %+v, %v", len(sigs), sigs, err)
	}
	if _, err := kel.Apply(p.PriorState(), kel.SignedEvent{Event: ev, Sigs: sigs}); err != nil {
		t.Errorf("the stored event and signatures do not verify: %v", err)
	}

	// tip.json, state.json, metadata.json.
	if got, w := show(id+"tip.json"), "{\n  \"version\": 1,\n  \"sequence\": 1,\n  \"said\": \""+ev.SAID+"\"\n}"; got != w {
		t.Errorf("tip.json:\n%s\nwant\n%s", got, w)
	}
	var st struct {
		Version   int             `json:"version"`
		Validated string          `json:"validated_against_said"`
		State     json.RawMessage `json:"state"`
	}
	if err := json.Unmarshal([]byte(show(id+"state.json")), &st); err != nil || st.Version != 1 || st.Validated != ev.SAID {
		t.Errorf("state.json: %+v %v", st, err)
	}
	if !strings.Contains(string(st.State), `"threshold": "2"`) || !strings.Contains(string(st.State), `"sequence": 1`) {
		t.Errorf("state: %s", st.State)
	}
	meta := show("v1/metadata.json")
	if !regexp.MustCompile(`^\{\n  "version": 1,\n  "identity_count": 1,\n  "device_count": 1,\n  "member_count": 0,\n  "updated_at": "\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6}|\.\d{9})?Z"\n\}$`).MatchString(meta) {
		t.Errorf("metadata.json:\n%s", meta)
	}
	snap, _ := reg.Snapshot()
	if _, err := snap.Verify(prefix); err != nil {
		t.Error(err)
	}
	fsck(t, dir)
}
