package kel

import (
	"errors"
	"strings"
	"testing"
)

func TestContributionRoundTrip(t *testing.T) {
	for _, k := range []testKey{newEd25519Key(t, 1), newP256Key(t)} {
		next := newEd25519Key(t, 9).pub
		c, err := NewContribution(k.pub, next)
		if err != nil {
			t.Fatal(err)
		}
		line := c.String()
		want := "auths-agent-contribution/1 key=" + k.pub + " next=" + NextKeyDigest(next)
		if line != want {
			t.Fatalf("line %q, want %q", line, want)
		}
		back, err := ParseContribution(line)
		if err != nil {
			t.Fatal(err)
		}
		if back.Key.QB64() != k.pub || back.NextDigest != NextKeyDigest(next) || back.String() != line {
			t.Fatalf("round trip: %+v", back)
		}
	}
}

// TestContributionBad: every malformed line is refused with an error that
// wraps ErrBadContribution, names what is wrong, and is one line.
func TestContributionBad(t *testing.T) {
	key := newEd25519Key(t, 1).pub
	nonTransferable := "B" + key[1:]
	dig := NextKeyDigest(newEd25519Key(t, 2).pub)
	good := ContributionTag + " key=" + key + " next=" + dig
	if _, err := ParseContribution(good); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ line, want string }{
		{"", "empty"},
		{good + " ", "4 space-separated fields, want 3"},
		{" " + good, "does not start with auths-agent-contribution/"},
		{good + "\n", "byte 125 is 0x0a"},
		{strings.Replace(good, " ", "\t", 1), "byte 26 is 0x09"},
		{strings.Replace(good, " next", "  next", 1), "4 space-separated fields"},
		{ContributionTag + " key=" + key, "2 space-separated fields, want 3"},
		{"auths-agent-contribution/2 key=" + key + " next=" + dig, "version is not one this auths-agent reads"},
		{"auths-agent-contribution/987654 key=" + key + " next=" + dig, "version is not one this auths-agent reads"},
		{"hello key=" + key + " next=" + dig, "does not start with auths-agent-contribution/"},
		{"pkcs11:token=t;object=k?pin-value=987654", "does not start with auths-agent-contribution/"},
		{ContributionTag + " next=" + dig + " key=" + key, "field 2 does not start with key="},
		{ContributionTag + " pin-value=987654 next=" + dig, "field 2 does not start with key="},
		{ContributionTag + " key=" + key + " nxt=" + dig, "field 3 does not start with next="},
		{ContributionTag + " key=" + key + " pin-value=987654", "field 3 does not start with next="},
		{ContributionTag + " key=987654 next=" + dig, "key=: public key: unsupported code"},
		{ContributionTag + " key=D987654 next=" + dig, "key=: public key: length 7, want 44"},
		{ContributionTag + " key=" + key + " next=E987654", "next=: digest: length 7, want 44"},
		{ContributionTag + " key=" + key + " next=987654", "next=: digest: unsupported code"},
		{ContributionTag + " key=" + key[:43] + " next=" + dig, "key=: public key"},
		{ContributionTag + " key=" + dig + " next=" + dig, "key=: public key"},
		{ContributionTag + " key=" + key + " next=" + key, "next=: digest"},
		{ContributionTag + " key=" + key + " next=" + dig[:43] + "!", "next=: digest"},
		{ContributionTag + " key=" + nonTransferable + " next=" + dig, "non-transferable"},
		{ContributionTag + " key=" + key + " next=" + NextKeyDigest(key), "the digest of key= itself"},
		{strings.Repeat("a", MaxContributionLen+1), "longer than any contribution"},
		{"auths-agent-contribution/1 key=D\xff next=E", "byte 32 is 0xff"},
	} {
		_, err := ParseContribution(tc.line)
		if err == nil {
			t.Errorf("%q: accepted", tc.line)
			continue
		}
		if !errors.Is(err, ErrBadContribution) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") || strings.Contains(err.Error(), "987654") {
			t.Errorf("%q: error %q, want one line wrapping ErrBadContribution containing %q", tc.line, err, tc.want)
		}
	}
}

func FuzzParseContribution(f *testing.F) {
	f.Add(ContributionTag + " key=" + newEd25519Key(f, 1).pub + " next=" + NextKeyDigest(newEd25519Key(f, 2).pub))
	f.Add(ContributionTag + " key=" + newP256Key(f).pub + " next=" + NextKeyDigest(newEd25519Key(f, 2).pub))
	f.Fuzz(func(t *testing.T, line string) {
		c, err := ParseContribution(line)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error on two lines: %q", err)
			}
			return
		}
		if c.String() != line {
			t.Fatalf("%q parses but prints as %q", line, c.String())
		}
	})
}
