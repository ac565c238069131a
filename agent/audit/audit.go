// Package audit keeps the agent's audit trail: one JSON line per signature,
// per refused request, and per recorded signature that was then not made or
// not handed out, appended to a file that only its owner can read
// ($XDG_STATE_HOME/auths-agent/audit.jsonl by default, see [DefaultPath]).
//
// # The chain
//
// Every line carries "seq" (its line number, from 1) and "prev", the
// SHA-256 of the previous line's bytes (without the newline); the first
// line's prev is [Genesis]. [Verify] walks a file and names the first line
// where the chain breaks: an edited line, a removed line, lines in another
// order, a line cut short. The chain makes changes visible, it does not make
// them impossible: whoever can write the file can rewrite every line after
// an edit, and removing the last lines leaves a valid shorter chain. Verify
// returns the head (count and hash of the last line) so that a copy kept
// elsewhere can be compared.
//
// # Appends
//
// [Sink.Write] writes a line with one write(2) to a file opened with
// O_APPEND, under an exclusive flock(2) on the file; [Sink.Sync] then
// makes it durable (fsync), and [Sink.Append] does both. The agent writes
// the record of a signature before it asks the token, and hands the
// signature back only after Sync returned: a crash at any point never
// lets a signature out without its record on disk. Writes are safe from
// many goroutines and from several processes using this package on the
// same file (the flock serializes them, and each write reads the tail the
// lock holder sees). A write or sync that fails returns an error, and the
// agent refuses the signature rather than sign unrecorded.
//
// Sync is a group commit: one fsync covers every line this Sink wrote
// before it started, so concurrent requests wait for one flush instead of
// one flush each, and a caller whose line an fsync in flight does not
// cover waits for it and starts the next. After an fsync failed, every
// later Write and Sync fails: Linux may have dropped the dirty pages it
// could not write and a later fsync would report success for lines that
// are not on disk (docs/DESIGN.md, "The audit trail's durability").
package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Genesis is the prev of the first line: the SHA-256 of
// "auths-agent audit trail v1".
var Genesis = hashLine([]byte("auths-agent audit trail v1"))

// MaxLine bounds one line, when writing and when reading.
const MaxLine = 64 << 10

// maxField bounds each text field: a client chooses some of them (an SSHSIG
// namespace), and a record must fit in a line.
const maxField = 1024

// Entry is one signature or refusal.
type Entry struct {
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	// Outcome is "signed", "refused", or "failed": a signature recorded
	// (as signed) before its token was asked that was not made, or made
	// and not handed out (another key of the request failed, its proposal
	// could not be saved or committed); the line follows the one it undoes.
	Outcome string `json:"outcome"`
	Peer    Peer   `json:"peer"`
	// Op is the request: "sign-event", "anchor", "ssh-sign", …
	Op  string `json:"op"`
	Key string `json:"key,omitempty"` // the key's URI without PIN attributes, or its CESR form
	// KERI: the identity, event type, sequence number and SAID signed.
	Prefix string  `json:"prefix,omitempty"`
	Type   string  `json:"type,omitempty"`
	Sn     *uint64 `json:"sn,omitempty"`
	SAID   string  `json:"said,omitempty"`
	// SSH: the key's fingerprint; What is "userauth" or "sshsig";
	// Namespace is the SSHSIG namespace; HostKey the server host key's
	// fingerprint of a user-authentication request, when it has one.
	Fingerprint string `json:"fingerprint,omitempty"`
	What        string `json:"what,omitempty"`
	Namespace   string `json:"namespace,omitempty"`
	HostKey     string `json:"host_key,omitempty"`
	// Reason says why a request was refused, or why a signature failed.
	Reason string `json:"reason,omitempty"`
	Prev   string `json:"prev"`
}

// Peer is the process that made the request.
type Peer struct {
	UID int    `json:"uid"`
	PID int    `json:"pid"`
	Exe string `json:"exe,omitempty"`
}

// Outcomes.
const (
	Signed  = "signed"
	Refused = "refused"
	Failed  = "failed"
)

// DefaultPath is $XDG_STATE_HOME/auths-agent/audit.jsonl, or
// ~/.local/state/auths-agent/audit.jsonl when XDG_STATE_HOME is unset or
// not absolute (as the XDG base directory spec says).
func DefaultPath(getenv func(string) string) (string, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	dir := getenv("XDG_STATE_HOME")
	if !filepath.IsAbs(dir) {
		home := getenv("HOME")
		if !filepath.IsAbs(home) {
			return "", errors.New("audit trail: neither XDG_STATE_HOME nor HOME is an absolute path")
		}
		dir = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(dir, "auths-agent", "audit.jsonl"), nil
}

// Sink appends entries to one audit file. Its methods are safe for
// concurrent use.
type Sink struct {
	path string

	mu   sync.Mutex // one write at a time in this process
	f    *os.File
	size int64  // the file's size after our last append, or -1
	seq  uint64 // the seq of the last line when the size is size
	head string // the hash of the last line when the size is size

	// Group commit (Sync): lines are counted as this Sink writes them.
	// fsync flushes the file (never reset by Close, so that Sync needs no
	// lock a Write holds; a test replaces it).
	fsync    func() error
	syncMu   sync.Mutex
	synced   *sync.Cond // broadcast when an fsync ends
	written  uint64     // lines written by this Sink
	durable  uint64     // lines known to be on disk
	flushing bool       // an fsync is in flight
	syncErr  error      // an fsync failed: nothing is durable any more
}

// Written identifies a line Write wrote, for Sync.
type Written uint64

// Open opens (creating it 0600, and its directory 0700, if needed) the
// audit file at path. An existing file that others may read or write is
// refused: the trail names what was signed for whom.
func Open(path string) (*Sink, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("audit trail %s: %w", path, unwrapPath(err))
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit trail %s: %w", path, unwrapPath(err))
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("audit trail %s: %w", path, unwrapPath(err))
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		f.Close()
		return nil, fmt.Errorf("audit trail %s: mode %04o lets others read or write it (want 0600)", path, perm)
	}
	if st.Size() == 0 {
		// A new file: its directory entry must survive a crash as well.
		if d, err := os.Open(filepath.Dir(path)); err == nil {
			_ = d.Sync()
			d.Close()
		}
	}
	sk := &Sink{path: path, f: f, size: -1, fsync: f.Sync}
	sk.synced = sync.NewCond(&sk.syncMu)
	return sk, nil
}

// Path is the file the sink appends to.
func (s *Sink) Path() string { return s.path }

// Close closes the file.
func (s *Sink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

// Append writes e as the next line (Seq and Prev are set here) and makes it
// durable before returning. Any error means the entry is not recorded.
func (s *Sink) Append(e Entry) error {
	w, err := s.Write(e)
	if err != nil {
		return err
	}
	return s.Sync(w)
}

// Write writes e as the next line (Seq and Prev are set here). The line is
// in the file when Write returns, and on disk once Sync(w) returned nil.
// Any error means the entry is not recorded.
func (s *Sink) Write(e Entry) (w Written, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return 0, fmt.Errorf("audit trail %s: closed", s.path)
	}
	if err := s.failed(); err != nil {
		return 0, err
	}
	if err := flock(s.f, unix.LOCK_EX); err != nil {
		return 0, fmt.Errorf("audit trail %s: lock: %w", s.path, err)
	}
	defer flock(s.f, unix.LOCK_UN)

	st, err := s.f.Stat()
	if err != nil {
		return 0, fmt.Errorf("audit trail %s: %w", s.path, unwrapPath(err))
	}
	// The chain continues from the file's last line. When nobody else
	// appended since our last append, that is what we wrote; otherwise it
	// is read back from the tail.
	seq, head := uint64(0), Genesis
	switch size := st.Size(); {
	case size == 0:
	case size == s.size:
		seq, head = s.seq, s.head
	default:
		last, err := s.tail(size)
		if err != nil {
			return 0, err
		}
		var prev struct {
			Seq uint64 `json:"seq"`
		}
		if err := json.Unmarshal(last, &prev); err != nil || prev.Seq == 0 {
			return 0, fmt.Errorf("audit trail %s: the last line is not an audit entry (run auths-agent audit --verify)", s.path)
		}
		seq, head = prev.Seq, hashLine(last)
	}
	e.Seq, e.Prev = seq+1, head
	clipFields(&e)
	line, err := json.Marshal(e)
	if err != nil {
		return 0, fmt.Errorf("audit trail %s: %w", s.path, err)
	}
	if len(line)+1 > MaxLine {
		return 0, fmt.Errorf("audit trail %s: entry of %d bytes is longer than %d", s.path, len(line)+1, MaxLine)
	}
	n, err := s.f.Write(append(line, '\n'))
	if err != nil {
		// A short write (disk full, file size limit) leaves part of a
		// line; cut it off, under the lock, so the file keeps whole lines.
		s.size = -1
		if n > 0 {
			_ = s.f.Truncate(st.Size())
		}
		return 0, fmt.Errorf("audit trail %s: write: %w", s.path, unwrapPath(err))
	}
	s.size, s.seq, s.head = st.Size()+int64(n), e.Seq, hashLine(line)
	s.syncMu.Lock()
	s.written++
	w = Written(s.written)
	s.syncMu.Unlock()
	return w, nil
}

// Sync returns once the line w (and every line this Sink wrote before it)
// is on disk. Concurrent callers share fsyncs (group commit): a caller
// whose line the fsync in flight may not cover waits for it to end, and
// then one of the waiters starts the next.
func (s *Sink) Sync(w Written) error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	for s.durable < uint64(w) {
		if s.syncErr != nil {
			return s.syncErr
		}
		if s.flushing {
			s.synced.Wait()
			continue
		}
		s.flushing = true
		through := s.written // lines in the file before this fsync starts
		s.syncMu.Unlock()
		err := s.fsync()
		s.syncMu.Lock()
		s.flushing = false
		s.synced.Broadcast()
		if err != nil {
			s.syncErr = fmt.Errorf("audit trail %s: fsync: %w (restart the agent once the file system is sound)", s.path, unwrapPath(err))
			return s.syncErr
		}
		s.durable = max(s.durable, through)
	}
	return nil
}

// failed returns the error of a failed fsync, after which nothing is
// recorded.
func (s *Sink) failed() error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	return s.syncErr
}

// tail returns the last line of the file (of size bytes), which must end
// with a newline.
func (s *Sink) tail(size int64) ([]byte, error) {
	r, err := os.Open(s.path)
	if err != nil {
		return nil, fmt.Errorf("audit trail %s: %w", s.path, unwrapPath(err))
	}
	defer r.Close()
	n := min(size, MaxLine)
	buf := make([]byte, n)
	if _, err := r.ReadAt(buf, size-n); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("audit trail %s: %w", s.path, unwrapPath(err))
	}
	if buf[len(buf)-1] != '\n' {
		return nil, fmt.Errorf("audit trail %s: ends in a partial line (run auths-agent audit --verify)", s.path)
	}
	buf = buf[:len(buf)-1]
	i := bytes.LastIndexByte(buf, '\n')
	if i < 0 && n < size {
		return nil, fmt.Errorf("audit trail %s: last line longer than %d bytes", s.path, MaxLine)
	}
	return buf[i+1:], nil
}

func clipFields(e *Entry) {
	for _, p := range []*string{&e.Outcome, &e.Op, &e.Key, &e.Prefix, &e.Type, &e.SAID, &e.Fingerprint, &e.What, &e.Namespace, &e.HostKey, &e.Reason, &e.Peer.Exe} {
		if len(*p) > maxField {
			*p = (*p)[:maxField] + "…"
		}
	}
}

func hashLine(line []byte) string {
	h := sha256.Sum256(line)
	return hex.EncodeToString(h[:])
}

func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
