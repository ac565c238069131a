package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/ssh"

	"github.com/auths-dev/auths-agent/kel"
)

// SSHKey is a key listed to SSH clients.
type SSHKey struct {
	Public  ssh.PublicKey
	Comment string // the key's URI without PIN attributes
}

// SSHKeys lists the keys held for SSH use. A key that cannot be opened is
// left out (and logged).
func (a *Agent) SSHKeys(ctx context.Context) ([]SSHKey, error) {
	var out []SSHKey
	for _, k := range a.held() {
		if !k.spec.Has(UseSSH) {
			continue
		}
		pub, _, _, err := a.sshPublic(ctx, k)
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			a.log.Warn("SSH key not listed", "key", k.uri, "err", err)
			continue
		}
		out = append(out, SSHKey{Public: pub, Comment: k.uri})
	}
	return out, nil
}

// sshPublic returns k's public key as an SSH key, in its wire form, and
// as the Verfer it was made from, made once per public key read from the
// token.
func (a *Agent) sshPublic(ctx context.Context, k *key) (ssh.PublicKey, []byte, kel.Verfer, error) {
	if _, err := a.verferOf(ctx, k); err != nil {
		return nil, nil, kel.Verfer{}, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.sshPub == nil {
		pk, err := k.verfer.PublicKey()
		if err != nil {
			return nil, nil, kel.Verfer{}, err
		}
		pub, err := ssh.NewPublicKey(pk)
		if err != nil {
			return nil, nil, kel.Verfer{}, err
		}
		k.sshPub, k.sshBlob = pub, pub.Marshal()
	}
	return k.sshPub, k.sshBlob, k.verfer, nil
}

type sshHostKey struct{}

// WithSSHHost returns ctx saying that the SSH session of the request is
// bound to the server host key host: the SSH client proved it to the
// socket (OpenSSH's session-bind@openssh.com). SignSSH names it in the
// audit record of a user-authentication signature for that session.
func WithSSHHost(ctx context.Context, host ssh.PublicKey) context.Context {
	return context.WithValue(ctx, sshHostKey{}, host)
}

// SignSSH signs data with the SSH key whose wire-format public key is
// pubBlob. data must parse as an SSH user-authentication request naming that
// key or as an SSHSIG blob; anything else (a KERI event among them) is a
// *RefusedError wrapping ErrNotSSHData and nothing is signed.
func (a *Agent) SignSSH(ctx context.Context, pubBlob, data []byte) (*ssh.Signature, error) {
	const op = "ssh sign"
	var k *key
	var pub ssh.PublicKey
	var want kel.Verfer
	for _, c := range a.held() {
		if !c.spec.Has(UseSSH) {
			continue
		}
		p, blob, v, err := a.sshPublic(ctx, c)
		if err != nil {
			continue
		}
		if bytes.Equal(blob, pubBlob) {
			k, pub, want = c, p, v
			break
		}
	}
	if k == nil {
		err := refuse(op, ErrUnknownKey, "no SSH key of this agent has that public key")
		a.record(ctx, AuditRecord{Op: "ssh-sign", Refused: err.Reason.Error()})
		return nil, err
	}
	what, err := CheckSSHData(data, pub)
	if err != nil {
		rerr := &RefusedError{Op: op, Reason: err}
		a.log.Warn("refused", "op", op, "key", k.uri, "peer", PeerOf(ctx).PID, "reason", err)
		a.record(ctx, AuditRecord{Op: "ssh-sign", Key: k.uri, Fingerprint: ssh.FingerprintSHA256(pub), Refused: err.Error()})
		return nil, rerr
	}
	var hostFP string
	if host, _ := ctx.Value(sshHostKey{}).(ssh.PublicKey); host != nil && what == "userauth" {
		hostFP = ssh.FingerprintSHA256(host)
		if named := hostboundKey(data); named != nil && !bytes.Equal(named, host.Marshal()) {
			err := fmt.Errorf("%w: the user-authentication request names another host key than the one its session is bound to (%s)", ErrNotSSHData, hostFP)
			a.log.Warn("refused", "op", op, "key", k.uri, "peer", PeerOf(ctx).PID, "reason", err)
			a.record(ctx, AuditRecord{Op: "ssh-sign", Key: k.uri, Fingerprint: ssh.FingerprintSHA256(pub), HostKey: hostFP, Refused: err.Error()})
			return nil, &RefusedError{Op: op, Reason: err}
		}
	}
	durable, err := a.recordSigning(ctx, AuditRecord{Op: "ssh-sign", Key: k.uri, Fingerprint: ssh.FingerprintSHA256(pub), What: what, HostKey: hostFP})
	if err != nil {
		return nil, err
	}
	s, err := a.openAs(ctx, op, k, want)
	if err != nil {
		a.recordNotSigned(ctx, AuditRecord{Op: "ssh-sign", Key: k.uri, Fingerprint: ssh.FingerprintSHA256(pub), What: what, HostKey: hostFP}, err)
		return nil, withKey(k.uri, err)
	}
	sig, err := onToken(ctx, a.sched, k.token, func(ctx context.Context) (*ssh.Signature, error) {
		signer, err := ssh.NewSignerFromSigner(s)
		if err != nil {
			return nil, err
		}
		return signer.Sign(rand.Reader, data)
	})
	if err != nil {
		a.failed(k, s, err)
		err = keyChanged(op, err)
		a.recordNotSigned(ctx, AuditRecord{Op: "ssh-sign", Key: k.uri, Fingerprint: ssh.FingerprintSHA256(pub), What: what, HostKey: hostFP}, err)
		return nil, withKey(k.uri, err)
	}
	if err := durable(); err != nil {
		return nil, err // the signature is dropped: it was not recorded
	}
	a.log.Info("signed", "op", op, "key", k.uri, "what", what, "host_key", hostFP, "peer", PeerOf(ctx).PID)
	return sig, nil
}

// SSH message numbers and magic strings of the data SSH clients sign.
const (
	msgUserAuthRequest = 50
	sshsigMagic        = "SSHSIG"
)

// CheckSSHData says what data is when it is something an SSH key may sign:
// "userauth" for an SSH user-authentication request (RFC 4252 section 7,
// and OpenSSH's publickey-hostbound-v00 form) that names pub, or
// "sshsig:NAMESPACE" for an SSHSIG blob (OpenSSH PROTOCOL.sshsig). Anything
// else is an error wrapping ErrNotSSHData that says why.
func CheckSSHData(data []byte, pub ssh.PublicKey) (string, error) {
	if bytes.HasPrefix(data, []byte(`{"v":"KERI`)) {
		return "", fmt.Errorf("%w: a KERI event; KERI events are signed only through sign-event@auths.dev", ErrNotSSHData)
	}
	if bytes.HasPrefix(data, []byte(sshsigMagic)) {
		return checkSSHSIG(data[len(sshsigMagic):])
	}
	return checkUserAuth(data, pub)
}

func checkSSHSIG(b []byte) (string, error) {
	r := &wire{b: b}
	ns, reserved, hashAlg, hash := r.str(), r.str(), r.str(), r.str()
	if r.err != nil || len(r.b) != 0 {
		return "", fmt.Errorf("%w: SSHSIG blob: %s", ErrNotSSHData, r.problem())
	}
	if len(ns) == 0 {
		return "", fmt.Errorf("%w: SSHSIG blob with an empty namespace", ErrNotSSHData)
	}
	if len(reserved) != 0 {
		return "", fmt.Errorf("%w: SSHSIG blob with a non-empty reserved field", ErrNotSSHData)
	}
	want := map[string]int{"sha256": 32, "sha512": 64}[string(hashAlg)]
	if want == 0 || len(hash) != want {
		return "", fmt.Errorf("%w: SSHSIG blob: hash %q of %d bytes (want sha256 or sha512)", ErrNotSSHData, clip(string(hashAlg)), len(hash))
	}
	if !printable(ns) {
		return "", fmt.Errorf("%w: SSHSIG namespace is not printable ASCII", ErrNotSSHData)
	}
	return "sshsig:" + string(ns), nil
}

func checkUserAuth(b []byte, pub ssh.PublicKey) (string, error) {
	r := &wire{b: b}
	session := r.str()
	msg := r.byte()
	user, service, method := r.str(), r.str(), r.str()
	hasSig := r.byte()
	alg, blob := r.str(), r.str()
	if r.err != nil {
		return "", fmt.Errorf("%w: neither an SSHSIG blob nor an SSH user-authentication request (%s)", ErrNotSSHData, r.problem())
	}
	switch {
	case len(session) == 0 || len(session) > 64:
		return "", fmt.Errorf("%w: user-authentication request with a session id of %d bytes", ErrNotSSHData, len(session))
	case msg != msgUserAuthRequest:
		return "", fmt.Errorf("%w: message type %d, want SSH_MSG_USERAUTH_REQUEST (50)", ErrNotSSHData, msg)
	case !printableUTF8(user) || !printable(service):
		return "", fmt.Errorf("%w: user or service name is not printable", ErrNotSSHData)
	case hasSig != 1:
		return "", fmt.Errorf("%w: user-authentication request without the signature flag", ErrNotSSHData)
	}
	switch string(method) {
	case "publickey":
	case "publickey-hostbound-v00@openssh.com":
		hostKey := r.str()
		if r.err != nil {
			return "", fmt.Errorf("%w: hostbound user-authentication request without a host key", ErrNotSSHData)
		}
		if _, err := ssh.ParsePublicKey(hostKey); err != nil {
			return "", fmt.Errorf("%w: hostbound user-authentication request: bad host key: %v", ErrNotSSHData, err)
		}
	default:
		return "", fmt.Errorf("%w: user-authentication method %q, want publickey", ErrNotSSHData, clip(string(method)))
	}
	if len(r.b) != 0 {
		return "", fmt.Errorf("%w: %d bytes after the user-authentication request", ErrNotSSHData, len(r.b))
	}
	if string(alg) != pub.Type() || !bytes.Equal(blob, pub.Marshal()) {
		return "", fmt.Errorf("%w: the user-authentication request names another key (%s)", ErrNotSSHData, clip(string(alg)))
	}
	return "userauth", nil
}

// hostboundKey returns the server host key a publickey-hostbound-v00
// user-authentication request names, or nil for another request. data
// has passed CheckSSHData.
func hostboundKey(data []byte) []byte {
	r := &wire{b: data}
	r.str()
	r.byte()
	r.str()
	r.str()
	method := r.str()
	r.byte()
	r.str()
	r.str()
	if string(method) != "publickey-hostbound-v00@openssh.com" {
		return nil
	}
	return r.str()
}

// printableUTF8 accepts a user name: RFC 4252 section 5 makes it UTF-8
// (ISO-10646), so only invalid UTF-8 and control characters are refused.
func printableUTF8(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, r := range string(b) {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

func printable(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// wire reads SSH wire-format fields, remembering the first error.
type wire struct {
	b   []byte
	err error
}

var errShort = errors.New("truncated")

func (w *wire) str() []byte {
	if w.err != nil {
		return nil
	}
	if len(w.b) < 4 {
		w.err = errShort
		return nil
	}
	n := binary.BigEndian.Uint32(w.b)
	if uint64(n) > uint64(len(w.b)-4) {
		w.err = errShort
		return nil
	}
	s := w.b[4 : 4+n]
	w.b = w.b[4+n:]
	return s
}

func (w *wire) byte() byte {
	if w.err != nil {
		return 0
	}
	if len(w.b) < 1 {
		w.err = errShort
		return 0
	}
	c := w.b[0]
	w.b = w.b[1:]
	return c
}

func (w *wire) problem() string {
	if w.err != nil {
		return w.err.Error()
	}
	return fmt.Sprintf("%d bytes left over", len(w.b))
}
