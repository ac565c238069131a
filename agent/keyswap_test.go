package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auths-dev/auths-agent/hsm"
	"github.com/auths-dev/auths-agent/hsm/pkcs11"
	"github.com/auths-dev/auths-agent/kel"
)

// auditLog is an AuditSink that keeps the records.
type auditLog struct {
	mu   sync.Mutex
	recs []AuditRecord
}

func (l *auditLog) Record(_ context.Context, r AuditRecord) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r)
	return nil
}

func (l *auditLog) last() AuditRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.recs) == 0 {
		return AuditRecord{}
	}
	return l.recs[len(l.recs)-1]
}

// changeKey closes the agent's token sessions (as SIGHUP does) and then,
// with a provider of its own, deletes the key at uri on the rig's token
// and, when regenerate is set, puts a new Ed25519 key under its label,
// whose CESR public key it returns.
func changeKey(t *testing.T, a *Agent, module, uri string, regenerate bool) string {
	t.Helper()
	if err := a.DropSessions(); err != nil {
		t.Fatal(err)
	}
	p, err := pkcs11.Open(module, pkcs11.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	u, err := hsm.ParsePKCS11URI(uri)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := p.Delete(ctx, u); err != nil {
		t.Fatal(err)
	}
	if !regenerate {
		return ""
	}
	info, err := p.Generate(ctx, u, kel.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	return info.Verfer.QB64()
}

// TestKeyReplacedOnToken: the agent checks a request against the public
// key it last read at k0; the key at k0 was replaced on the token while
// the agent's sessions were closed (SIGHUP, lock). When the agent opens k0
// again for the signature, the new key signs nothing: the SSH request and
// the KERI event, each checked against the key before, are refused (key
// changed, naming the key now there), and the audit trail ends with the
// refusal. Before the fix the new key signed them.
func TestKeyReplacedOnToken(t *testing.T) {
	rig, _, _ := custodyRig(t, "k0")
	uri := rig.URI("t1", "k0")
	log := &auditLog{}
	a := tokenAgent(t, Config{Keys: []KeySpec{{URI: uri, Uses: []Use{UseKERI, UseSSH}}}}, Options{Audit: log})
	ctx := context.Background()
	keys, err := a.SSHKeys(ctx)
	if err != nil || len(keys) != 1 {
		t.Fatalf("SSH keys: %v, %v", keys, err)
	}
	pub0 := keys[0].Public
	userauth := cat(sshString(bytes.Repeat([]byte{1}, 32)), []byte{50}, sshString([]byte("me")), sshString([]byte("ssh-connection")),
		sshString([]byte("publickey")), []byte{1}, sshString([]byte(pub0.Type())), sshString(pub0.Marshal()))
	if _, err := a.SignSSH(ctx, pub0.Marshal(), userauth); err != nil {
		t.Fatal(err)
	}

	// SSH: the request names the key the agent knew.
	pub1 := changeKey(t, a, rig.Module, uri, true)
	sig, err := a.SignSSH(ctx, pub0.Marshal(), userauth)
	if !errors.Is(err, ErrKeyChanged) || !strings.Contains(err.Error(), uri[:strings.Index(uri, "?")]) || !strings.Contains(err.Error(), "now holds key "+pub1) {
		t.Fatalf("SSH request for the replaced key: signature %v, err %v; want refused, naming the new key", sig, err)
	}
	if r := log.last(); r.Op != "ssh-sign" || !strings.HasPrefix(r.Refused, "key changed on its token: the token now holds key "+pub1) {
		t.Errorf("last audit record %+v, want the refusal", r)
	}

	// KERI: an inception by the key the agent knows now (pub1), after
	// that key too was replaced.
	pub2 := changeKey(t, a, rig.Module, uri, true)
	e := inception(t, pub1)
	sigs, err := a.SignEvent(ctx, e.Raw())
	if !errors.Is(err, ErrKeyChanged) || !strings.Contains(err.Error(), "sign-event refused") || !strings.Contains(err.Error(), "now holds key "+pub2) {
		t.Fatalf("inception by the replaced key: signatures %v, err %v; want refused, naming the new key", sigs, err)
	}
	if r := log.last(); r.Op != "sign-event" || r.SAID != e.SAID || !strings.HasPrefix(r.Refused, "key changed on its token: the token now holds key "+pub2) {
		t.Errorf("last audit record %+v, want the refusal of %s", r, e.SAID)
	}

	// The key the token holds now signs what names it.
	if _, err := a.SignEvent(ctx, inception(t, pub2).Raw()); err != nil {
		t.Errorf("inception by the key on the token now: %v", err)
	}
}

// TestKeyChangedFromBackend: a backend finds the change itself when it
// reaches the token again (hsm.ErrKeyChanged, as TestKeyChangedWhileGone
// in hsm/pkcs11 shows on SoftHSM). The agent drops that key's signer, so
// the next request opens the key again and openAs compares it, and the
// error becomes the refusal openAs gives, which recordNotSigned records.
func TestKeyChangedFromBackend(t *testing.T) {
	backendErr := fmt.Errorf(`pkcs11:token=t1;object=k0: %w: %w: key "k0" on token "t1"`, hsm.ErrNotFound, hsm.ErrKeyChanged)
	err := keyChanged("sign-event", backendErr)
	var re *RefusedError
	if !errors.As(err, &re) || re.Op != "sign-event" || !errors.Is(err, ErrKeyChanged) {
		t.Fatalf("keyChanged: %v, want a sign-event refusal for a changed key", err)
	}
	if got := notSignedOf(withKey("pkcs11:token=t1;object=k0", err)); len(got) != 1 || got[0].err != re || got[0].key != "pkcs11:token=t1;object=k0" {
		t.Errorf("notSignedOf: %+v, want the refusal of k0", got)
	}
	other := errors.New("C_Sign: CKR_DEVICE_ERROR")
	if got := keyChanged("sign-event", other); got != other {
		t.Errorf("keyChanged of another error: %v", got)
	}

	rig, _, _ := custodyRig(t, "k0")
	a := tokenAgent(t, Config{Keys: []KeySpec{{URI: rig.URI("t1", "k0"), Uses: []Use{UseKERI}}}}, Options{})
	k := a.held()[0]
	s, err := a.open(context.Background(), k)
	if err != nil {
		t.Fatal(err)
	}
	a.failed(k, s, backendErr)
	k.mu.Lock()
	dropped := k.signer == nil
	k.mu.Unlock()
	if !dropped {
		t.Error("the signer of a key that changed is kept: every later request would fail the same way")
	}
}

// TestFailedSignatureRecorded: the record of a signature is written before
// its token is asked; when the token then fails (here the key is gone from
// it), a "failed" record with the error follows it, so that the trail does
// not say signed for a signature nobody made.
func TestFailedSignatureRecorded(t *testing.T) {
	rig, pub, _ := custodyRig(t, "k0")
	uri := rig.URI("t1", "k0")
	log := &auditLog{}
	a := tokenAgent(t, Config{Keys: []KeySpec{{URI: uri, Uses: []Use{UseKERI}}}}, Options{Audit: log})
	ctx := context.Background()
	e := inception(t, pub["k0"])
	if _, err := a.SignEvent(ctx, e.Raw()); err != nil {
		t.Fatal(err)
	}
	changeKey(t, a, rig.Module, uri, false)
	n := len(log.recs)
	if sigs, err := a.SignEvent(ctx, e.Raw()); err == nil {
		t.Fatalf("signed with the key gone: %v", sigs)
	}
	recs := log.recs[n:]
	if len(recs) != 2 || recs[0].Failed != "" || recs[0].Refused != "" || recs[0].SAID != e.SAID ||
		recs[1].SAID != e.SAID || !strings.Contains(recs[1].Failed, "not found") || strings.Contains(recs[1].Failed, "\n") {
		t.Fatalf("records after the failed signature: %+v, want its record and then a failed one naming the error", recs)
	}
	if regexp.MustCompile(`pin-value=[^…]`).MatchString(recs[1].Failed) || recs[1].Key != a.held()[0].uri {
		t.Errorf("the failed record shows a PIN or does not name its key: %+v", recs[1])
	}
}

// TestNotSignedOf: the audit trail gets one line per key of a request:
// the joins signAll and signAllKept make are split by key, an error of one
// key that wraps several (fmt.Errorf with two %w, as the PIV backend makes
// for a card pulled out) stays one line, and each names its key.
func TestNotSignedOf(t *testing.T) {
	pulled := fmt.Errorf("%w: %w", hsm.ErrTokenAbsent, errors.New("smart card removed"))
	touch := &TouchTimeoutError{Token: "PIV card 1 slot 9c", After: time.Second}
	cases := []struct {
		name string
		err  error
		want []string // key and error text, or the typed error's text
	}{
		{"one key, an error wrapping two", withKey("piv:serial=1;slot=9a", pulled), []string{"piv:serial=1;slot=9a|" + pulled.Error()}},
		{"two keys (signAll)", errors.Join(withKey("k1", pulled), withKey("k2", touch)), []string{"k1|" + pulled.Error(), "k2|" + touch.Error()}},
		{"two keys (signAllKept)", errors.Join(errors.Join(withKey("k1", pulled)), errors.Join(withKey("k2", touch))), []string{"k1|" + pulled.Error(), "k2|" + touch.Error()}},
		{"no key named", pulled, []string{"|" + pulled.Error()}},
		{"nothing", nil, nil},
	}
	for _, tc := range cases {
		var got []string
		for _, ns := range notSignedOf(tc.err) {
			got = append(got, ns.key+"|"+ns.err.Error())
		}
		if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	if ns := notSignedOf(withKey("k2", touch)); len(ns) != 1 || ns[0].err != error(touch) {
		t.Errorf("a touch timeout is not kept as itself: %+v", ns)
	}
}

// TestOtherKeyFailedRecorded: a 2-key inception whose second key is gone
// from the token. sign-event hands out nothing; the trail holds both
// signatures' records, then a failed line for the key that failed and
// one for the key that signed ("not handed out"), each naming its key.
func TestOtherKeyFailedRecorded(t *testing.T) {
	rig, pub, _ := custodyRig(t, "k0", "k1")
	log := &auditLog{}
	a := tokenAgent(t, Config{Keys: []KeySpec{{URI: rig.URI("t1", "k0"), Uses: []Use{UseKERI}}, {URI: rig.URI("t1", "k1"), Uses: []Use{UseKERI}}}}, Options{Audit: log})
	ctx := context.Background()
	keys := []string{pub["k0"], pub["k1"]}
	e, err := kel.NewInception(kel.InceptionSpec{Keys: keys, Threshold: kel.SimpleThreshold(2),
		NextDigests: []string{kel.NextKeyDigest(keys[0]), kel.NextKeyDigest(keys[1])}, NextThreshold: kel.SimpleThreshold(2)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.SignEvent(ctx, e.Raw()); err != nil {
		t.Fatal(err)
	}
	changeKey(t, a, rig.Module, rig.URI("t1", "k1"), false)
	n := len(log.recs)
	if sigs, err := a.SignEvent(ctx, e.Raw()); err == nil {
		t.Fatalf("signed with a key gone: %v", sigs)
	}
	var got []string
	for _, r := range log.recs[n:] {
		what := "signed"
		switch {
		case strings.Contains(r.Failed, "not handed out: another key of the request did not sign"):
			what = "not handed out"
		case strings.Contains(r.Failed, "not found"):
			what = "not found"
		case r.Failed != "" || r.Refused != "":
			what = "other: " + r.Failed + r.Refused
		}
		got = append(got, strings.TrimPrefix(r.Key[:strings.Index(r.Key, "?")], "pkcs11:token=t1;object=")+" "+what)
	}
	slices.Sort(got)
	want := []string{"k0 not handed out", "k0 signed", "k1 not found", "k1 signed"}
	if !slices.Equal(got, want) {
		t.Errorf("records: %q, want %q", got, want)
	}
}
