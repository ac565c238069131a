package agent

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func sshString(s []byte) []byte {
	return append([]byte{byte(len(s) >> 24), byte(len(s) >> 16), byte(len(s) >> 8), byte(len(s))}, s...)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// TestCheckSSHData: what an SSH key signs, and what it refuses with a
// reason (nothing here reaches a token).
func TestCheckSSHData(t *testing.T) {
	pk, _, _ := ed25519.GenerateKey(nil)
	pub, _ := ssh.NewPublicKey(pk)
	other, _, _ := ed25519.GenerateKey(nil)
	opub, _ := ssh.NewPublicKey(other)
	session := bytes.Repeat([]byte{1}, 32)
	userauthAs := func(user, method string, p ssh.PublicKey, extra ...[]byte) []byte {
		return cat(append([][]byte{sshString(session), {50}, sshString([]byte(user)), sshString([]byte("ssh-connection")),
			sshString([]byte(method)), {1}, sshString([]byte(p.Type())), sshString(p.Marshal())}, extra...)...)
	}
	userauth := func(method string, p ssh.PublicKey, extra ...[]byte) []byte {
		return userauthAs("me", method, p, extra...)
	}
	sshsig := func(ns, hash string, n int) []byte {
		return cat([]byte("SSHSIG"), sshString([]byte(ns)), sshString(nil), sshString([]byte(hash)), sshString(make([]byte, n)))
	}
	ok := []struct {
		data []byte
		want string
	}{
		{userauth("publickey", pub), "userauth"},
		// RFC 4252 section 5: the user name is UTF-8.
		{userauthAs("zoë", "publickey", pub), "userauth"},
		{userauth("publickey-hostbound-v00@openssh.com", pub, sshString(opub.Marshal())), "userauth"},
		{sshsig("git", "sha512", 64), "sshsig:git"},
		{sshsig("file", "sha256", 32), "sshsig:file"},
	}
	for _, tc := range ok {
		got, err := CheckSSHData(tc.data, pub)
		if err != nil || got != tc.want {
			t.Errorf("CheckSSHData = %q, %v; want %q", got, err, tc.want)
		}
	}
	bad := []struct {
		name string
		data []byte
		want string
	}{
		{"KERI event", []byte(`{"v":"KERI10JSON0000ed_","t":"ixn","d":"E"}`), "a KERI event"},
		{"random", []byte("hello"), "neither an SSHSIG blob nor"},
		{"another key", userauth("publickey", opub), "names another key"},
		{"control in user", userauthAs("me\nroot", "publickey", pub), "not printable"},
		{"user not UTF-8", userauthAs("me\xff", "publickey", pub), "not printable"},
		{"password method", userauth("password", pub), `method "password"`},
		{"trailing bytes", append(userauth("publickey", pub), 0), "bytes after"},
		{"hostbound without host key", userauth("publickey-hostbound-v00@openssh.com", pub), "without a host key"},
		{"sshsig empty namespace", sshsig("", "sha512", 64), "empty namespace"},
		{"sshsig md5", sshsig("git", "md5", 16), `hash "md5"`},
		{"sshsig short hash", sshsig("git", "sha512", 63), "of 63 bytes"},
		{"sshsig truncated", sshsig("git", "sha512", 64)[:30], "truncated"},
		{"sshsig trailing", append(sshsig("git", "sha512", 64), 1), "left over"},
	}
	for _, tc := range bad {
		_, err := CheckSSHData(tc.data, pub)
		if !errors.Is(err, ErrNotSSHData) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrNotSSHData with %q", tc.name, err, tc.want)
		}
	}
}
