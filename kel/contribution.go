package kel

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// A Contribution is what a member whose token is on another machine hands
// to whoever builds an establishment event: the public key it signs with
// (its position in the new key list) and the digest of a next key that
// stays on its token (its position in the next-key list). One line of text:
//
//	auths-agent-contribution/1 key=DKEY… next=EDIGEST…
//
// The first field names the format and its version; key is a transferable
// CESR public key (D or 1AAJ), next a Blake3-256 digest (E) of a next key's
// CESR text (NextKeyDigest). Fields are separated by one space, in this
// order, with nothing before, after or between them.
type Contribution struct {
	Key        Verfer
	NextDigest string
}

// ContributionTag is the first field of a contribution line: the format
// and its version.
const ContributionTag = "auths-agent-contribution/1"

// contributionPrefix is the tag without its version, to tell a line of
// another version from something that is not a contribution.
const contributionPrefix = "auths-agent-contribution/"

// MaxContributionLen bounds a contribution line: the tag, a P-256 key and
// a digest take 128 bytes; anything much longer is not one.
const MaxContributionLen = 256

// ErrBadContribution is wrapped by every error of ParseContribution.
var ErrBadContribution = errors.New("malformed contribution")

// NewContribution returns the contribution of key (CESR) with the digest of
// the next key nextKey (CESR); both must be transferable keys.
func NewContribution(key, nextKey string) (Contribution, error) {
	v, err := ParseVerfer(key)
	if err != nil {
		return Contribution{}, err
	}
	nv, err := ParseVerfer(nextKey)
	if err != nil {
		return Contribution{}, err
	}
	c := Contribution{Key: v, NextDigest: NextKeyDigest(nv.QB64())}
	return c, c.check()
}

// ParseContribution parses one contribution line (without its line
// terminator). Errors say which field is wrong and why, on one line.
func ParseContribution(line string) (Contribution, error) {
	bad := func(format string, a ...any) (Contribution, error) {
		return Contribution{}, fmt.Errorf("%w: "+format, append([]any{ErrBadContribution}, a...)...)
	}
	if len(line) > MaxContributionLen {
		return bad("%d bytes, longer than any contribution (at most %d)", len(line), MaxContributionLen)
	}
	if line == "" {
		return bad("empty (want %s key=KEY next=DIGEST)", ContributionTag)
	}
	for i := 0; i < len(line); i++ {
		if c := line[i]; c < 0x21 && c != ' ' || c > 0x7e {
			return bad("byte %d is 0x%02x: a contribution is printable ASCII on one line", i, c)
		}
	}
	fields := strings.Split(line, " ")
	if fields[0] != ContributionTag {
		if strings.HasPrefix(fields[0], contributionPrefix) {
			return bad("version is not one this auths-agent reads (it reads %s)", ContributionTag)
		}
		// No part of the line is echoed: text given where a line belongs
		// may be anything (a key URI with its PIN, a secret pasted into the
		// wrong place). Errors name the field and what it should be.
		return bad("does not start with %s (want %s key=KEY next=DIGEST, the line id contribute prints)", contributionPrefix, ContributionTag)
	}
	if len(fields) != 3 {
		return bad("%d space-separated fields, want 3: %s key=KEY next=DIGEST (one space between fields, none around)", len(fields), ContributionTag)
	}
	key, ok := strings.CutPrefix(fields[1], "key=")
	if !ok {
		return bad("field 2 does not start with key= (want key=KEY)")
	}
	next, ok := strings.CutPrefix(fields[2], "next=")
	if !ok {
		return bad("field 3 does not start with next= (want next=DIGEST)")
	}
	v, err := ParseVerfer(key)
	if err != nil {
		return bad("key=: %s", unquote(err, key))
	}
	if _, err := ParseDigest(next); err != nil {
		return bad("next=: %s", unquote(err, next))
	}
	c := Contribution{Key: v, NextDigest: next}
	if err := c.check(); err != nil {
		return Contribution{}, fmt.Errorf("%w: %w", ErrBadContribution, err)
	}
	return c, nil
}

// unquote returns the text of err, an error of ParseVerfer or ParseDigest
// about value, without the quoted value ("public key: length 7, want 44").
func unquote(err error, value string) string {
	return strings.Replace(err.Error(), " "+strconv.Quote(clip(value)), "", 1)
}

// check refuses a key that cannot be rotated and a next digest that
// commits to the current key itself (the member could never rotate to a
// key not yet exposed).
func (c Contribution) check() error {
	if !c.Key.Transferable() {
		return fmt.Errorf("key=%s is non-transferable (code %s): a member's key must be rotatable (D or 1AAJ)", clip(c.Key.QB64()), c.Key.Code)
	}
	if c.NextDigest == NextKeyDigest(c.Key.QB64()) {
		return fmt.Errorf("next=%s is the digest of key= itself: the next key must be another key", clip(c.NextDigest))
	}
	return nil
}

// String returns the contribution's line (without a line terminator).
func (c Contribution) String() string {
	return ContributionTag + " key=" + c.Key.QB64() + " next=" + c.NextDigest
}
