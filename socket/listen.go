package socket

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrAgentRunning: another agent answers on the socket path.
var ErrAgentRunning = errors.New("another agent is listening")

// Listener is a prepared agent socket. Close removes the socket file.
type Listener struct {
	*net.UnixListener
	Path string
	lock *os.File
}

// Listen prepares and listens on the socket at path (see the package
// comment). The socket is made 0600.
func Listen(path string) (*Listener, error) {
	path = filepath.Clean(path)
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("socket directory %s: %w", dir, unwrapPath(err))
		}
		// Ours: make it 0700 whatever the umask.
		if err := os.Chmod(dir, 0o700); err != nil {
			return nil, fmt.Errorf("socket directory %s: %w", dir, unwrapPath(err))
		}
	} else if err != nil {
		return nil, fmt.Errorf("socket directory %s: %w", dir, unwrapPath(err))
	}
	// Two agents starting at once on one path would both find no live
	// socket; the lock file orders them. It stays beside the socket.
	lock, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("socket lock %s.lock: %w", path, unwrapPath(err))
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("%w on %s (it holds %s.lock)", ErrAgentRunning, path, path)
	}
	fail := func(err error) (*Listener, error) {
		lock.Close()
		return nil, err
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return fail(fmt.Errorf("%s exists and is not a socket: not replacing it", path))
		}
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return fail(fmt.Errorf("%w on %s", ErrAgentRunning, path))
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return fail(fmt.Errorf("%s: cannot tell whether an agent listens there: %w", path, err))
		}
		// A dead agent's socket: nobody accepts on it.
		if err := os.Remove(path); err != nil {
			return fail(fmt.Errorf("stale socket %s: %w", path, unwrapPath(err)))
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fail(fmt.Errorf("%s: %w", path, unwrapPath(err)))
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return fail(fmt.Errorf("listen on %s: %w", path, err))
	}
	ln.SetUnlinkOnClose(true)
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return fail(fmt.Errorf("socket %s: %w", path, unwrapPath(err)))
	}
	return &Listener{UnixListener: ln, Path: path, lock: lock}, nil
}

// Close stops listening, removes the socket file and releases the lock.
func (l *Listener) Close() error {
	err := l.UnixListener.Close()
	l.lock.Close()
	return err
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// DefaultPath is where the agent's socket is when nothing says otherwise:
// $AUTHS_AGENT_SOCK, else $XDG_RUNTIME_DIR/auths-agent/agent.sock, else
// ~/.auths-agent/agent.sock.
func DefaultPath(getenv func(string) string) (string, error) {
	if p := getenv("AUTHS_AGENT_SOCK"); p != "" {
		return p, nil
	}
	if d := getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "auths-agent", "agent.sock"), nil
	}
	home := getenv("HOME")
	if home == "" {
		return "", errors.New("no socket path: set AUTHS_AGENT_SOCK, XDG_RUNTIME_DIR or HOME")
	}
	return filepath.Join(home, ".auths-agent", "agent.sock"), nil
}
