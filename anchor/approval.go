package anchor

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/auths-dev/auths-agent/kel"
)

// Approval is what a signature over a proposal approves, in the terms a
// person checks before touching a token: whose event it is, which event,
// the keys it sets, and what it anchors. The CLI prints it before `pending
// sign` signs; an agent can show it before it asks for a PIN or a touch.
type Approval struct {
	Prefix string
	Type   string // icp, rot or ixn
	Sn     uint64
	SAID   string
	Prior  string // the event it follows; "" for an inception

	// Establishment events (icp, rot): the keys and thresholds they set.
	Keys          []string
	Threshold     kel.Threshold
	NextDigests   int
	NextThreshold kel.Threshold

	Seals        []ApprovedSeal
	Attestations []ApprovedAttestation
}

// ApprovedSeal is one seal of the event.
type ApprovedSeal struct {
	// Text is the seal as ParseSeal reads it (d=SAID, i=AID,s=HEX,d=SAID),
	// or its JSON when it has another shape.
	Text string
	// Device is the device DID whose attestation this digest seal anchors
	// in the same batch, "" when it anchors none of them.
	Device string
}

// ApprovedAttestation is an attestation the batch stores.
type ApprovedAttestation struct {
	Device    string // the device DID it is stored under
	Subject   string // the document's "subject" ("" when it has none)
	SAID      string // anchored by a digest seal of the event
	Supersede bool   // replaces the device's current attestation
}

// Approval describes what a signature over p approves.
func (p *Proposal) Approval() Approval {
	e := p.event
	a := Approval{Prefix: e.Prefix, Type: e.Type, Sn: e.Sn, SAID: e.SAID, Prior: e.Prior}
	if e.IsEstablishment() {
		a.Keys = append([]string(nil), e.Keys...)
		a.Threshold, a.NextThreshold = e.KeyThreshold, e.NextThreshold
		a.NextDigests = len(e.NextDigests)
	}
	byDigestSeal := map[string]string{}
	for _, at := range p.attestations {
		byDigestSeal[string(kel.DigestSeal(at.SAID))] = at.Device
		a.Attestations = append(a.Attestations, ApprovedAttestation{
			Device: at.Device, Subject: documentSubject(at.Document), SAID: at.SAID, Supersede: at.Supersede,
		})
	}
	for _, s := range e.Seals {
		c := compact(s)
		a.Seals = append(a.Seals, ApprovedSeal{Text: sealText(c), Device: byDigestSeal[string(c)]})
	}
	return a
}

// Lines returns the approval as aligned lines for people, one fact each.
// Text that is not printable ASCII (it may come from another machine's
// proposal) is shown quoted with Go escapes:
//
//	identity     EKf0…
//	event        ixn s=a (10) EBq3…, follows EJ8u…
//	seal         d=EHx2… (attestation of did:key:z6Mk…)
//	attestation  stores did:key:z6Mk…: subject did:key:z6Mk…, SAID EHx2…
func (a Approval) Lines() []string {
	line := func(label, format string, args ...any) string {
		return fmt.Sprintf("%-12s %s", label, fmt.Sprintf(format, args...))
	}
	event := line("event", "%s s=%x (%d) %s", printable(a.Type), a.Sn, a.Sn, printable(a.SAID))
	if a.Prior != "" {
		event += ", follows " + printable(a.Prior)
	}
	out := []string{line("identity", "%s", printable(a.Prefix)), event}
	if a.Type == kel.TypeInception || a.Type == kel.TypeRotation {
		out = append(out, line("keys", "%s (kt %s)", strings.Join(a.Keys, ", "), a.Threshold.Text()))
		if a.NextDigests == 0 {
			out = append(out, line("next keys", "none: nothing may follow this event"))
		} else {
			out = append(out, line("next keys", "%d %s (nt %s)", a.NextDigests, plural(a.NextDigests, "digest"), a.NextThreshold.Text()))
		}
	}
	for _, s := range a.Seals {
		if s.Device != "" {
			out = append(out, line("seal", "%s (attestation of %s)", printable(s.Text), printable(s.Device)))
		} else {
			out = append(out, line("seal", "%s", printable(s.Text)))
		}
	}
	for _, at := range a.Attestations {
		verb := "stores"
		if at.Supersede {
			verb = "supersedes"
		}
		subject := "no subject"
		if at.Subject != "" {
			subject = "subject " + printable(at.Subject)
		}
		out = append(out, line("attestation", "%s %s: %s, SAID %s", verb, printable(at.Device), subject, printable(at.SAID)))
	}
	return out
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// sealText writes a compact seal the way ParseSeal reads it, or as its
// JSON when it is neither a digest nor an event seal.
func sealText(c []byte) string {
	var f struct {
		I *string `json:"i"`
		S *string `json:"s"`
		D *string `json:"d"`
	}
	if c == nil || json.Unmarshal(c, &f) != nil || f.D == nil {
		return string(c)
	}
	if _, err := kel.ParseDigest(*f.D); err != nil {
		return string(c)
	}
	switch {
	case f.I == nil && f.S == nil && string(c) == string(kel.DigestSeal(*f.D)):
		return "d=" + *f.D
	case f.I != nil && f.S != nil && checkAID(*f.I) == nil && string(c) == string(kel.EventSeal(*f.I, mustHex(*f.S), *f.D)):
		return "i=" + *f.I + ",s=" + *f.S + ",d=" + *f.D
	}
	return string(c)
}

// printable returns s when it is printable ASCII, else s quoted with Go
// escapes, so that text from a proposal (which may come from another
// machine) cannot move a terminal's cursor or hide behind bidirectional
// marks.
func printable(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return strconv.QuoteToASCII(s)
		}
	}
	return s
}

// documentSubject returns the "subject" string of an attestation document,
// "" when it has none.
func documentSubject(doc []byte) string {
	var d struct {
		Subject string `json:"subject"`
	}
	if json.Unmarshal(doc, &d) != nil {
		return ""
	}
	return d.Subject
}
