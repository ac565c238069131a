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
	file os.FileInfo // the socket file as bound, to remove only that
}

// Listen prepares and listens on the socket at path (see the package
// comment). The socket is made 0600.
func Listen(path string) (*Listener, error) {
	path = filepath.Clean(path)
	dir := filepath.Dir(path)
	if err := prepareDir(dir); err != nil {
		return nil, err
	}
	// Two agents starting at once on one path would both find no live
	// socket; the lock file orders them. It stays beside the socket.
	// O_NOFOLLOW: in a shared directory a symlink planted at the lock's
	// name must not make us create or open a file elsewhere.
	lock, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
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
	ln, fi, err := bindPrivate(dir, path)
	if err != nil {
		return fail(err)
	}
	return &Listener{UnixListener: ln, Path: path, lock: lock, file: fi}, nil
}

// prepareDir creates the socket's directory 0700 when it is missing. A
// directory that exists, or that another process creates at the same
// moment, is left as it is: only a directory this call made is chmodded
// (through a descriptor opened without following symlinks, so a directory
// swapped for a symlink meanwhile is not followed).
func prepareDir(dir string) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return fmt.Errorf("socket directory %s: %w", dir, unwrapPath(err))
	}
	err := os.Mkdir(dir, 0o700)
	if errors.Is(err, fs.ErrExist) {
		fi, err := os.Stat(dir)
		if err != nil {
			return fmt.Errorf("socket directory %s: %w", dir, unwrapPath(err))
		}
		if !fi.IsDir() {
			return fmt.Errorf("socket directory %s: not a directory", dir)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("socket directory %s: %w", dir, unwrapPath(err))
	}
	// Ours: 0700 whatever the umask took away.
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket directory %s: %w", dir, err)
	}
	defer unix.Close(fd)
	if err := unix.Fchmod(fd, 0o700); err != nil {
		return fmt.Errorf("socket directory %s: %w", dir, err)
	}
	return nil
}

// bindPrivate binds the socket inside a fresh 0700 directory beside path,
// makes it 0600 there, and renames it to path. bind(2) creates the socket
// with 0777 less the umask, so binding at path directly would leave it
// wider than 0600 until the chmod; inside the private directory nobody
// else can reach it meanwhile, and the rename shows it at path with its
// final mode.
func bindPrivate(dir, path string) (*net.UnixListener, os.FileInfo, error) {
	tmp, err := os.MkdirTemp(dir, ".auths-agent-bind-")
	if err != nil {
		return nil, nil, fmt.Errorf("socket directory %s: %w", dir, unwrapPath(err))
	}
	defer os.RemoveAll(tmp)
	name := filepath.Join(tmp, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: name, Net: "unix"})
	if err != nil {
		return nil, nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	// The listener's own name is gone after the rename; Close removes
	// path itself, and only while it is still this socket.
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(name, 0o600); err != nil {
		ln.Close()
		return nil, nil, fmt.Errorf("socket %s: %w", path, unwrapPath(err))
	}
	if err := os.Rename(name, path); err != nil {
		ln.Close()
		return nil, nil, fmt.Errorf("socket %s: %w", path, unwrapPath(err))
	}
	fi, err := os.Lstat(path)
	if err != nil {
		ln.Close()
		return nil, nil, fmt.Errorf("socket %s: %w", path, unwrapPath(err))
	}
	return ln, fi, nil
}

// Close stops listening, removes the socket file if it is still the one
// this listener bound (not a file someone put in its place), and releases
// the lock.
func (l *Listener) Close() error {
	err := l.UnixListener.Close()
	if fi, lerr := os.Lstat(l.Path); lerr == nil && os.SameFile(fi, l.file) {
		if rerr := os.Remove(l.Path); rerr != nil && err == nil {
			err = rerr
		}
	}
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
